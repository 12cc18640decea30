#!/usr/bin/env python3
"""FastCDC sizes measured on the benchmark suite's data: what docs/ARCHITECTURE.md's choice
of chunk sizes rests on.

    scripts/chunk_sizes.py [--mib 400] [--small 2500]

For each candidate (min, avg, max):
- scattered edits: a random file of --mib MiB, 1% of it overwritten as 64 KiB patches at
  random offsets; bytes of the new chunks / bytes changed, without and with the chunk list
  written again (88 bytes a chunk reference, as format 2 stores one);
- ten versions of the suite's mixed dataset (scenario 2's changes): store after ten
  versions / after one, beside the same ratio of the changed bytes (the limit);
- chunks per GiB (each costs a chunk reference, an index entry and per-chunk work).
Chunk bytes only: no store is written, so it runs in a minute or two.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile

import blake3
from pyfastcdc.cy import FastCDC

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchsuite import data  # noqa: E402

KiB, MiB = 1 << 10, 1 << 20
CANDIDATES = [(8 * KiB, 16 * KiB, 64 * KiB), (8 * KiB, 32 * KiB, 128 * KiB),
              (16 * KiB, 48 * KiB, 192 * KiB), (16 * KiB, 64 * KiB, 256 * KiB),
              (32 * KiB, 64 * KiB, 256 * KiB), (256 * KiB, 1 * MiB, 4 * MiB)]
REF_BYTES = 88  # ["<64 hex>",65536,0,123456789], in a chunk list


def chunkset(buf: bytes, sizes: tuple[int, int, int]) -> dict[bytes, int]:
    lo, avg, hi = sizes
    if len(buf) <= lo:
        return {blake3.blake3(buf).digest(): len(buf)} if buf else {}
    cdc = FastCDC(avg, min_size=lo, max_size=hi)
    return {blake3.blake3(c.data).digest(): c.length for c in cdc.cut_buf(buf)}


def scattered(size: int) -> None:
    rng = random.Random(3)
    base = b"".join(rng.randbytes(MiB) for _ in range(size // MiB))
    new = bytearray(base)
    patches = size // 100 // (64 * KiB)
    for _ in range(patches):
        at = rng.randrange(size - 64 * KiB)
        new[at:at + 64 * KiB] = rng.randbytes(64 * KiB)
    changed = patches * 64 * KiB
    print(f"scattered edits: {patches} patches of 64 KiB in {size // MiB} MiB")
    for sizes in CANDIDATES:
        old, now = chunkset(base, sizes), chunkset(bytes(new), sizes)
        up = sum(n for a, n in now.items() if a not in old)
        print(f"  {_name(sizes)}: new chunks {up / changed:5.2f}x the changed bytes, with the "
              f"chunk list {(up + REF_BYTES * len(now)) / changed:5.2f}x; "
              f"{len(now) * (1 << 30) // size:,} chunks per GiB")


def versions(total: int, small: int) -> None:
    root = tempfile.mkdtemp(prefix="chunk-sizes-")
    try:
        data.mixed(os.path.join(root, "d"), total, small)
        stores: dict = {s: {} for s in CANDIDATES}

        def add() -> None:
            for path in data.files_of(os.path.join(root, "d")):
                with open(path, "rb") as f:
                    content = f.read()
                for sizes in CANDIDATES:
                    stores[sizes].update(chunkset(content, sizes))

        add()
        first = {s: sum(v.values()) for s, v in stores.items()}
        one = limit = sum(os.path.getsize(p) for p in data.files_of(os.path.join(root, "d")))
        for version in range(2, 11):
            limit += data.next_version(os.path.join(root, "d"), version).written
            add()
        print(f"ten versions of the mixed dataset: the changed bytes' limit is {limit / one:.3f}x")
        for sizes in CANDIDATES:
            ratio = sum(stores[sizes].values()) / first[sizes]
            print(f"  {_name(sizes)}: {ratio:.3f}x, {ratio / (limit / one):.3f} of the limit")
    finally:
        shutil.rmtree(root)


def _name(sizes: tuple[int, int, int]) -> str:
    return "min {:>4} avg {:>4} max {:>4} KiB".format(*(s // KiB for s in sizes))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=400)
    ap.add_argument("--small", type=int, default=2500)
    args = ap.parse_args()
    scattered(args.mib * MiB)
    versions(args.mib * MiB, args.small)


if __name__ == "__main__":
    main()
