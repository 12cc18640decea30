"""For the tests of store format 2 (packs): folders to upload, and what a store holds."""

from __future__ import annotations

import json
import random

from datamonfs.core.stores import open_store

from .files import write

MiB = 1 << 20


def folder(root, seed: int = 1) -> dict[str, bytes]:
    """Small files, a file of a few chunks and one of many (a chunks object)."""
    rng = random.Random(seed)
    files = {f"small/f{i:03}.txt": rng.randbytes(rng.randrange(1, 5000)) for i in range(40)}
    files["mid.bin"] = rng.randbytes(300_000)
    files["big.bin"] = rng.randbytes(5 * MiB)
    files["empty"] = b""
    for rel, data in files.items():
        write(root, rel, data)
    return files


def keys(store_url: str, prefix: str) -> list[str]:
    return list(open_store(store_url).list(prefix))


def bundle_record(store_url: str, bundle_id: str) -> dict:
    return json.loads(open_store(store_url).get(f"bundle/r/{bundle_id}"))
