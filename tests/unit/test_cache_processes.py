"""Several processes on one cache, and processes SIGKILLed at any point of an insert."""

from __future__ import annotations

import json
import os
import random
import signal
import time

import pytest
from support.cache import (MiB, block_cache, block_files, check_consistent, child_result,
                           chunk, store_chunks)

# Child prelude: open a cache in argv[1] with limit argv[2]; chunk(n, seed) as in the tests.
PRELUDE = """
import json, os, random, signal, sys, time
sys.path.insert(0, {tests!r})
from support.cache import MiB, chunk, CountingStore
from datamonfs.cache.index import CacheIndex
from datamonfs.cache import blocks, BlockCache
directory, limit = sys.argv[1], int(sys.argv[2])
index = CacheIndex(directory)
cache = BlockCache(index, limit)
def die(*_):
    os.kill(os.getpid(), signal.SIGKILL)
""".format(tests=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

KILL_AT = PRELUDE + """
point = sys.argv[3]
cache.put(*chunk(MiB, 0))                      # committed before the crash
real_rename, real_fdopen = os.rename, os.fdopen
if point == "writing":                         # half the bytes in the temp file
    class Half:
        def __init__(self, f): self.f = f
        def __enter__(self): return self
        def __exit__(self, *a): pass
        def write(self, data): self.f.write(data[:len(data) // 2]); self.f.flush(); die()
    os.fdopen = lambda fd, mode: Half(real_fdopen(fd, mode))
elif point == "renaming":                      # temp file complete, not renamed
    os.rename = die
elif point == "committing":                    # file in place, entry not committed
    os.rename = lambda a, b: (real_rename(a, b), die())
elif point == "unlinking":                     # eviction committed, evicted file still there
    blocks.unlink_quietly = die
for seed in (1, 2, 3, 4, 5):
    cache.put(*chunk(MiB, seed))
"""


@pytest.mark.parametrize("point", ["writing", "renaming", "committing", "unlinking"])
def test_sigkill_mid_insert_then_repair(tmp_path, children, point):
    proc = children(KILL_AT, str(tmp_path), str(4 * MiB), point)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    leftovers = len(os.listdir(tmp_path / "tmp")) + len(block_files(tmp_path))
    stats = check_consistent(tmp_path)  # opening repairs; then index and files agree
    with block_cache(tmp_path) as cache:
        present = [seed for seed in range(6) if cache.contains(chunk(MiB, seed)[0])]
    if point == "unlinking":  # chunks 0-3 filled the cache; inserting 4 evicted 0
        assert present == [1, 2, 3, 4] and leftovers == 5
    else:  # the first chunk survived; the interrupted one is gone without a trace
        assert present == [0] and leftovers == 2
    assert stats["entries"] == len(present) and stats["size"] == len(present) * MiB


LOOP = PRELUDE + """
rng = random.Random(int(sys.argv[3]))
print("ready", flush=True)
while True:
    seed = rng.randrange(12)
    addr, data = chunk(MiB // 2 + seed * 4096, seed)
    got = cache.get(addr)
    assert got is None or got == data, "served wrong bytes"
    if got is None:
        cache.put(addr, data)
"""


def test_sigkill_at_random_points_leaves_a_repairable_cache(tmp_path, children):
    rng = random.Random(7)
    for round_ in range(6):
        proc = children(LOOP, str(tmp_path), str(4 * MiB), str(round_))
        assert proc.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        stats = check_consistent(tmp_path)
        assert stats["size"] <= 4 * MiB


MIXED = PRELUDE + """
rng = random.Random(int(sys.argv[3]))
hits = misses = 0
deadline = time.monotonic() + float(sys.argv[4])
while time.monotonic() < deadline:
    seed = rng.randrange(16)
    addr, data = chunk(MiB // 2 + seed * 4096, seed)
    got = cache.get(addr)
    assert got is None or got == data, "served wrong bytes"
    if got is None:
        misses += 1
        cache.put(addr, data)
    else:
        hits += 1
cache.close()
print(json.dumps({"hits": hits, "misses": misses}))
"""


def test_processes_share_one_cache(tmp_path, children):
    """Three processes read and insert at once under a limit that forces evictions."""
    procs = [children(MIXED, str(tmp_path), str(4 * MiB), str(i), "2.0") for i in range(3)]
    results = [child_result(p) for p in procs]
    stats = check_consistent(tmp_path)
    assert stats["size"] <= 4 * MiB
    assert stats["hits"] == sum(r["hits"] for r in results) > 0
    assert stats["misses"] == sum(r["misses"] for r in results) > 0


READ_SAME = PRELUDE + """
from datamonfs.cache import CachedChunkReader
from datamonfs.core.chunks import ChunkStore
from datamonfs.core.encoding import address
from datamonfs.core.stores import open_store
chunks = json.loads(sys.argv[4])
counting = CountingStore(open_store(sys.argv[3]), delay=0.3)
reader = CachedChunkReader(cache, ChunkStore(counting))
random.Random(os.getpid()).shuffle(chunks)
while not os.path.exists(os.path.join(directory, "go")):
    time.sleep(0.01)
from datamonfs.core.chunks import ChunkRef
for addr, size in chunks:
    assert address(reader.read_chunk(ChunkRef(addr, size))) == addr
print(json.dumps({"fetches": counting.chunk_gets()}))
"""


def test_processes_fetch_each_chunk_once(tmp_path, children, store_url):
    chunks = store_chunks(store_url, [300_000 + i for i in range(5)])
    listing = json.dumps([(a, n) for a, n, _ in chunks])
    cache_dir = tmp_path / "cache"
    with block_cache(cache_dir):  # create it before the children race to
        pass
    procs = [children(READ_SAME, str(cache_dir), str(64 * MiB), store_url, listing) for _ in range(3)]
    time.sleep(1.0)  # let them all start and open the cache
    (cache_dir / "go").touch()
    results = [child_result(p) for p in procs]
    assert sum(r["fetches"] for r in results) == len(chunks)
    assert check_consistent(cache_dir)["entries"] == len(chunks)
