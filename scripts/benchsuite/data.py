"""Generated datasets (seeded, so every run and every tool sees the same bytes), the
changes that make successive versions, and datamon's storage cost computed from files."""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import tarfile
from dataclasses import dataclass

from .common import MiB

BLOCK = 64 * MiB  # generation write size
DATAMON_BLOCK = 2 * MiB


def write_random(path: str, size: int, rng: random.Random) -> None:
    """Incompressible bytes, so no tool gains from compression the others lack."""
    with open(path, "wb") as f:
        for off in range(0, size, BLOCK):
            f.write(rng.randbytes(min(BLOCK, size - off)))


def small_file_size(rng: random.Random) -> int:
    return rng.randrange(1024, 64 * 1024)  # 1-64 KiB, mean ~32 KiB


def small_files(root: str, count: int, rng: random.Random, per_dir: int = 500,
                first: int = 0) -> int:
    """count small files in directories of per_dir; returns their bytes."""
    total = 0
    for i in range(first, first + count):
        d = os.path.join(root, f"d{i // per_dir:04}")
        os.makedirs(d, exist_ok=True)
        size = small_file_size(rng)
        with open(os.path.join(d, f"f{i:07}.dat"), "wb") as f:
            f.write(rng.randbytes(size))
        total += size
    return total


def mixed(root: str, total: int, small: int, large: int = 3, seed: int = 1) -> None:
    """A mixed dataset of about total bytes: `large` big files under large/, `small` small
    files under small/ (a quarter of the bytes, at most)."""
    rng = random.Random(seed)
    small_bytes = small_files(os.path.join(root, "small"), small, rng)
    os.makedirs(os.path.join(root, "large"))
    each = max(MiB, (total - small_bytes) // large)
    for i in range(large):
        write_random(os.path.join(root, "large", f"part{i}.bin"), each, rng)


def files_of(root: str) -> list[str]:
    return sorted(os.path.join(d, n) for d, _, names in os.walk(root) for n in names)


@dataclass
class Change:
    in_place: int = 0
    inserted: int = 0
    rewritten: int = 0
    added: int = 0
    removed: int = 0

    @property
    def written(self) -> int:
        """Bytes a store must take in at least: what is new in this version."""
        return self.in_place + self.inserted + self.rewritten + self.added


def next_version(root: str, version: int, fraction: float = 0.01) -> Change:
    """Change about `fraction` of the dataset's bytes the ways datasets change: a region
    overwritten in place in one large file, bytes inserted near the start of another,
    small files rewritten, added and removed."""
    rng = random.Random(1000 + version)
    large = files_of(os.path.join(root, "large"))
    small = files_of(os.path.join(root, "small"))
    total = sum(os.path.getsize(p) for p in large + small)
    budget = int(total * fraction)
    change = Change()

    target = large[version % len(large)]  # ~half of the budget: one region in place
    size = os.path.getsize(target)
    span = min(budget // 2, size)
    with open(target, "r+b") as f:
        f.seek(rng.randrange(0, size - span + 1))
        f.write(rng.randbytes(span))
    change.in_place = span

    target = large[(version + 1) % len(large)]  # 64 KiB inserted within the first MiB
    insert = rng.randbytes(64 * 1024)
    at = rng.randrange(0, min(MiB, os.path.getsize(target)))
    tmp = target + ".tmp"
    with open(target, "rb") as src, open(tmp, "wb") as dst:
        dst.write(src.read(at))
        dst.write(insert)
        shutil.copyfileobj(src, dst, BLOCK)
    os.replace(tmp, target)
    change.inserted = len(insert)

    rest = budget - change.in_place - change.inserted  # the rest: small files, in thirds
    for path in rng.sample(small, len(small)):
        if change.rewritten >= rest // 3:
            break
        size = small_file_size(rng)
        with open(path, "wb") as f:
            f.write(rng.randbytes(size))
        change.rewritten += size
    for path in rng.sample(small, len(small)):
        if change.removed >= rest // 3 or not os.path.exists(path):
            continue
        change.removed += os.path.getsize(path)
        os.unlink(path)
    new_dir = os.path.join(root, "small", f"v{version:02}")
    os.makedirs(new_dir, exist_ok=True)
    n = 0
    while change.added < rest // 3:
        size = small_file_size(rng)
        with open(os.path.join(new_dir, f"new{n:05}.dat"), "wb") as f:
            f.write(rng.randbytes(size))
        change.added += size
        n += 1
    return change


class DatamonBlocks:
    """The store datamon would keep: every file cut into fixed 2 MiB blocks, each keyed by
    its position in the file and its BLAKE2b hash, stored once per key."""

    def __init__(self):
        self.keys: set[tuple[int, bytes]] = set()
        self.bytes = 0

    def add_version(self, root: str) -> int:
        """Bytes this version adds to the store."""
        before = self.bytes
        for path in files_of(root):
            with open(path, "rb") as f:
                index = 0
                while block := f.read(DATAMON_BLOCK):
                    key = (index, hashlib.blake2b(block, digest_size=32).digest())
                    if key not in self.keys:
                        self.keys.add(key)
                        self.bytes += len(block)
                    index += 1
        return self.bytes - before


def tar_of_small_files(path: str, count: int, seed: int = 7) -> int:
    """A tar archive of count small files in directories of 1,000; returns its bytes."""
    rng = random.Random(seed)
    total = 0
    with tarfile.open(path, "w") as tf:
        for i in range(count):
            data = rng.randbytes(rng.randrange(100, 8000))
            info = tarfile.TarInfo(f"d{i // 1000:03}/f{i:06}.dat")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
            total += len(data)
    return total
