#!/usr/bin/env python3
"""Where a random 4 KiB read through a mount of a local store spends its time, part by
part, without FUSE: the disk (os.pread of 4 KiB and of a whole 64 KiB chunk of a pack,
kernel caches dropped), a verified read as the mount worker's thread does it
(FileReader over InPlaceReader: the chunk read and checked against its BLAKE3 address),
and the hop from the event loop to a thread and back (trio.to_thread.run_sync, and
trio.lowlevel.start_thread_soon, which does not rename the thread for every job). The
FUSE round trip itself is scenario 3's pyfuse3 memory FS row. Root (drop_caches).

    scripts/time_random_reads.py [--reads 2000] [--store DIR]

The pack (512 MiB of 32-96 KiB chunks) is written under DIR the first time, then reused
(default: a scratch directory under bench/work, written every run).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchsuite.common import drop_caches, scratch  # noqa: E402

from datamonfs.cache.file_reader import FileReader  # noqa: E402
from datamonfs.cache.in_place import InPlaceReader  # noqa: E402
from datamonfs.core.chunks import ChunkRef, ChunkStore  # noqa: E402
from datamonfs.core.encoding import address  # noqa: E402
from datamonfs.core.stores.local import LocalStore  # noqa: E402

PACK = "cd" * 32
SIZE = 512 << 20


def make_pack(store: LocalStore, listing: str) -> list[ChunkRef]:
    path = store.path(ChunkStore.pack_key(PACK))
    if not os.path.exists(listing):
        rnd = random.Random(1)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f, open(listing + ".tmp", "w") as out:
            at = 0
            while at < SIZE:
                chunk = rnd.randbytes(rnd.randint(32 << 10, 96 << 10))
                f.write(chunk)
                out.write(f"{address(chunk)} {len(chunk)} {at}\n")
                at += len(chunk)
        os.replace(listing + ".tmp", listing)
    with open(listing) as f:
        return [ChunkRef(a, int(n), PACK, int(at)) for a, n, at in (line.split() for line in f)]


def timed(name: str, read, reads: int, size: int) -> None:
    drop_caches()
    rng = random.Random(5)
    r0, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(reads):
        read(rng.randrange(0, size - 4096) & ~4095)
    wall, r1 = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    print(f"{name:34} {reads / wall:7,.0f} reads/s  {wall / reads * 1e6:5.0f} us a read "
          f"(user {(r1.ru_utime - r0.ru_utime) / reads * 1e6:4.0f} us, "
          f"system {(r1.ru_stime - r0.ru_stime) / reads * 1e6:4.0f} us)")


def hops(jobs: int = 20_000) -> None:
    import outcome
    import trio
    from trio.lowlevel import (Abort, current_task, current_trio_token, reschedule,
                               start_thread_soon, wait_task_rescheduled)

    async def lean(fn):
        task, token = current_task(), current_trio_token()
        start_thread_soon(lambda: outcome.capture(fn),
                          lambda result: token.run_sync_soon(reschedule, task, result))
        return await wait_task_rescheduled(lambda _: Abort.FAILED)

    async def main():
        limiter = trio.CapacityLimiter(16)
        start = time.perf_counter()
        for _ in range(jobs):
            await trio.to_thread.run_sync(int, limiter=limiter)
        full = (time.perf_counter() - start) / jobs
        start = time.perf_counter()
        for _ in range(jobs):
            async with limiter:
                await lean(int)
        bare = (time.perf_counter() - start) / jobs
        print(f"{'hop: trio.to_thread.run_sync':34} {full * 1e6:5.0f} us a job")
        print(f"{'hop: start_thread_soon, no naming':34} {bare * 1e6:5.0f} us a job")

    trio.run(main)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reads", type=int, default=2000)
    ap.add_argument("--store", default=None, help="where the pack is kept (default: scratch)")
    args = ap.parse_args()
    root = args.store or os.path.join(scratch("random-reads"), "store")
    store = LocalStore(root)
    refs = make_pack(store, os.path.join(root, "chunks.txt"))
    size = sum(ref.size for ref in refs)
    fd = os.open(store.path(ChunkStore.pack_key(PACK)), os.O_RDONLY)
    reader = FileReader(InPlaceReader(ChunkStore(store)), refs)

    def verified(offset: int) -> None:  # as the worker does: the loop's try, then a thread's
        data = reader.read_nowait(offset, 4096)
        if data is None:
            data = reader.read_buffer(offset, 4096)
        assert len(data) == 4096

    try:
        timed("disk: pread 4 KiB", lambda off: os.pread(fd, 4096, off), args.reads, size)
        timed("disk: pread 64 KiB", lambda off: os.pread(fd, 65536, off & ~65535), args.reads,
              size)
        timed("verified 4 KiB (FileReader, no FUSE)", verified, args.reads, size)
    finally:
        os.close(fd)
    hops()


if __name__ == "__main__":
    main()
