"""For the cache tests: a counting wrapper of a real store, chunks, caches in
temporary directories, and what child processes that use a cache report."""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
import time
from collections import Counter
from contextlib import contextmanager

from datamonfs.cache import BlockCache, CachedChunkReader
from datamonfs.cache.index import CacheIndex
from datamonfs.core.chunks import ChunkStore
from datamonfs.core.encoding import address
from datamonfs.core.stores import open_store
from datamonfs.core.stores.base import ForwardingStore, Store

MiB = 1 << 20


class CountingStore(ForwardingStore):
    """A real store that counts its reads and how many run at once; `delay`
    makes each read slower, to widen the window in which requests overlap."""

    def __init__(self, inner: Store, delay: float = 0.0):
        super().__init__(inner)
        self.delay = delay
        self.gets: Counter[str] = Counter()
        self.ranges: list[tuple[str, int, int]] = []  # get_range calls: key, start, length
        self.active = self.max_active = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            self.gets[key] += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(self.delay)
            return self.inner.get(key)
        finally:
            with self._lock:
                self.active -= 1

    def get_range(self, key, start, length):
        with self._lock:
            self.ranges.append((key, start, length))
        return self.inner.get_range(key, start, length)

    def chunk_gets(self) -> int:
        return sum(n for key, n in self.gets.items() if key.startswith("chunk/"))

    def content_bytes(self) -> tuple[int, bool]:
        """The bytes of file content read (loose chunks whole, pack ranges), and whether
        any byte was read twice."""
        total, twice, seen = 0, False, {}
        for key, start, length in self.ranges:
            if key.startswith("pack/"):
                total += length
                spans = seen.setdefault(key, [])
                twice = twice or any(s < start + length and start < e for s, e in spans)
                spans.append((start, start + length))
        for key, n in self.gets.items():
            if key.startswith(("chunk/", "pack/")):
                total += n * len(self.inner.get(key))
                twice = twice or n > 1
        return total, twice


def blob(n: int, seed: int) -> bytes:
    """The same bytes for the same (n, seed), different bytes for another seed; cheaply."""
    return random.Random(seed).randbytes(4096) * (n // 4096) + b"x" * (n % 4096)


def chunk(n: int, seed: int) -> tuple[str, bytes]:
    data = blob(n, seed)
    return address(data), data


def store_chunks(store_url: str, sizes: list[int]) -> list[tuple[str, int, bytes]]:
    """Real chunks uploaded to the store: (address, size, bytes)."""
    store = open_store(store_url)
    chunks = []
    for i, n in enumerate(sizes):
        addr, data = chunk(n, i)
        store.put(ChunkStore.loose_key(addr), data)  # loose chunks (format 1): a key each
        chunks.append((addr, n, data))
    store.close()
    return chunks


@contextmanager
def block_cache(directory, limit: int = 64 * MiB):
    index = CacheIndex(str(directory))
    cache = BlockCache(index, limit)
    try:
        yield cache
    finally:
        cache.close()
        index.close()


@contextmanager
def cached_reader(directory, store_url: str, limit: int = 64 * MiB, delay: float = 0.0,
                  workers: int = 8):
    """(reader, counting store) over a real store and a cache in `directory`."""
    counting = CountingStore(open_store(store_url), delay)
    with block_cache(directory, limit) as cache:
        reader = CachedChunkReader(cache, ChunkStore(counting), workers=workers)
        try:
            yield reader, counting
        finally:
            reader.close()
            counting.inner.close()


def block_files(directory) -> dict[str, int]:
    """Cached block files: name -> size."""
    root = os.path.join(directory, "blocks")
    return {name: os.path.getsize(os.path.join(root, sub, name))
            for sub in os.listdir(root) for name in os.listdir(os.path.join(root, sub))}


def block_path(directory, addr: str) -> str:
    """The block file holding a cached chunk."""
    with block_cache(directory) as cache:
        from datamonfs.cache.index import Record

        return cache.index.files.block_path(Record.unpack(cache._entry(addr.encode())).token)


def check_consistent(directory) -> dict:
    """Open the cache (repairing it) and check that index and files agree exactly."""
    with block_cache(directory) as cache:
        index = cache.index
        from datamonfs.cache.index import FileRecord, Record

        with index.env.begin() as txn:
            entries = {k.decode(): Record.unpack(v) for k, v in txn.cursor(db=index.blocks_db)}
            records = {t.hex(): FileRecord.unpack(v) for t, v in txn.cursor(db=index.files_db)}
            lru = [k for k, _ in txn.cursor(db=index.lru_db)]
            size = index.counter(txn, b"size")
        files = block_files(directory)
        assert files == {token: rec.bytes for token, rec in records.items()}
        assert size == sum(files.values())
        assert sorted(k[8:].hex() for k in lru) == sorted(records)
        for rec in entries.values():
            assert rec.offset + rec.size <= records[rec.token.hex()].bytes
        assert os.listdir(os.path.join(directory, "tmp")) == []
        for addr in entries:
            data = cache.peek(addr)
            assert data is not None and address(data) == addr
        return cache.stats()


def child_result(proc: subprocess.Popen, timeout: float = 60) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])
