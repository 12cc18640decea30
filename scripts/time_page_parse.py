#!/usr/bin/env python3
"""CPU time of parsing directory pages as a read-only mount does (`PageReader`, lenient:
decode, check, build the entries), per 1,000 entries, on the pages of a bundle of --files
small files in directories of 1,000 (the tree of scenario 3's `find` + stat walk). No FUSE
and no dropped caches, so it can run beside other work; the figure is the best of
--passes passes over every page (the least disturbed by the machine's other load).

    scripts/time_page_parse.py [--files 10000] [--passes 5] [--store DIR]

The store is made under DIR (default: a scratch directory) the first time and reused
after, so two checkouts can be compared on the same pages: run each one's copy with its
own venv and the same --store, alternately, a few times.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchsuite import data  # noqa: E402
from benchsuite.common import REPO_ROOT  # noqa: E402

import datamonfs  # noqa: E402
from datamonfs.core.config import Config  # noqa: E402
from datamonfs.core.objects import ObjectStore  # noqa: E402
from datamonfs.core.trees import TreeReader  # noqa: E402
from datamonfs.daemon.mount_worker import GC_YOUNG  # noqa: E402
from datamonfs.fs.pages import PageReader  # noqa: E402


class MemoryMeta:
    """The metadata cache (LMDB in a mount) as a dict: the timing is the parse alone."""

    def __init__(self):
        self.objects: dict[str, bytes] = {}

    def get(self, addr: str) -> bytes | None:
        return self.objects.get(addr)

    def put(self, addr: str, data: bytes) -> None:
        self.objects[addr] = data


def make_store(root: str, files: int) -> None:
    tree = os.path.join(root, "tree")
    data.small_files(tree, files, random.Random(5), per_dir=1000)
    url = "file://" + os.path.join(root, "store")
    cfg = Config(name="Bench", email="bench@example.org", store=url,
                 cache_dir=os.path.join(root, "cache"))
    with datamonfs.open(url, config=cfg, create=True) as store:
        store.create_repo("walk").upload(tree, "walk tree")


def leaf_pages(root: str) -> MemoryMeta:
    meta = MemoryMeta()
    for dirpath, _, names in os.walk(os.path.join(root, "store", "meta")):
        for name in names:
            with open(os.path.join(dirpath, name), "rb") as f:
                raw = f.read()
            if b'"type":"tree"' in raw and b'"entries":' in raw:
                meta.put(name, raw)
    return meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--store", default=os.path.join(REPO_ROOT, "bench", "work", "page-parse"))
    args = ap.parse_args()
    if not os.path.isdir(os.path.join(args.store, "store")):
        make_store(args.store, args.files)
    meta = leaf_pages(args.store)
    reader = PageReader(TreeReader(ObjectStore(None, meta)), lenient=True)
    gc.freeze()  # as a mount worker does once mounted
    gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])
    best = None
    for _ in range(args.passes):
        start, entries = time.process_time(), 0
        for addr in meta.objects:
            entries += reader.layout(addr)[0].total
        spent = time.process_time() - start
        best = spent if best is None else min(best, spent)
    print(f"{best / entries * 1000 * 1000:.2f} ms CPU per 1,000 entries "
          f"({entries} entries in {len(meta.objects)} pages, best of {args.passes} passes; "
          f"{os.path.dirname(datamonfs.__file__)})")


if __name__ == "__main__":
    main()
