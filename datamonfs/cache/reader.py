"""CachedChunkReader: chunk reads through the block cache.

A hit is an index lookup plus a read of the pieces wanted, each checked. A miss is
fetched from the source once: other threads that miss the same chunk share that
fetch and its outcome, and other processes wait for it (see BlockCache.fetch), all
within one store deadline per read. The size a file's chunk list gives is checked
against the chunk's real size on hits and misses alike: a list that lies is an
IntegrityError, never bytes. At most `workers` fetches from the source run at once
per reader; read-ahead (`prefetch`) runs in a pool of as many threads, with a
bounded queue.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from ..core.chunks import ChunkReader
from ..core.stores.base import deadline, time_left
from ..errors import IntegrityError, StoreUnavailable
from .blocks import FETCH_WAIT, BlockCache
from .index import log


class CachedChunkReader:
    """Implements core.chunks.ChunkReader; with `cache=None` it reads straight from the source."""

    def __init__(self, cache: BlockCache | None, source: ChunkReader, workers: int = 8):
        self.cache = cache
        self.source = source
        self._fetch_slots = threading.BoundedSemaphore(workers)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="datamonfs-prefetch")
        self._lock = threading.Lock()
        self._queued: dict[str, int] = {}  # addr -> size
        self._max_queued = 4 * workers
        # Read-ahead beyond a fraction of the cache would evict what is being read.
        self._max_queued_bytes = cache.limit // 4 if cache else 0
        self._queued_bytes = 0
        self._closed = False

    def read_chunk(self, addr: str, size: int) -> bytes:
        """The chunk's bytes, verified (by the source on a miss, by digest on a hit)."""
        if self.cache is None:
            with deadline():
                return _sized(addr, size, self._load(addr, size))
        data = self.cache.get(addr, size)
        return data if data is not None else self._fetch(addr, size)

    def read_range(self, addr: str, size: int, start: int, end: int) -> bytes:
        """Bytes [start, end) of the chunk: on a hit, only the pieces holding them are
        read (see BlockCache.get_range); on a miss the chunk is fetched and cached whole."""
        if not 0 <= start <= end <= size:
            raise ValueError(f"range [{start}, {end}) is outside a chunk of {size} bytes")
        if self.cache is not None:
            data = self.cache.get_range(addr, start, end, size)
            if data is not None:
                return data
            return self._fetch(addr, size)[start:end]
        return self.read_chunk(addr, size)[start:end]

    def fill(self, addr: str, size: int) -> None:
        """Make sure a chunk is cached, without reading it back."""
        if self.cache is not None and not self.cache.contains(addr):
            self._fetch(addr, size)

    def _fetch(self, addr: str, size: int) -> bytes:
        with deadline():  # waiting for another fetch of it, then fetching: one deadline
            return _sized(addr, size, self.cache.fetch(addr, size,
                                                       lambda: self._load(addr, size)))

    def _load(self, addr: str, size: int) -> bytes:
        if not self._fetch_slots.acquire(timeout=max(time_left(FETCH_WAIT), 0)):
            raise StoreUnavailable(f"gave up waiting to fetch chunk {addr} (every fetch slot "
                                   "is busy with a store that does not answer)")
        try:
            return self.source.read_chunk(addr, size)
        finally:
            self._fetch_slots.release()

    def prefetch(self, chunks: list[tuple[str, int]]) -> None:
        """Start fetching chunks into the cache in the background; returns at once.
        Cached chunks are only read ahead by the kernel. Chunks beyond the queue's
        bound are skipped (the read that needs one fetches it)."""
        if self.cache is None:
            return
        for addr, size in chunks:
            if self.cache.preload(addr):  # cached: no fetch, no thread hand-off
                continue
            with self._lock:
                if (self._closed or addr in self._queued or len(self._queued) >= self._max_queued
                        or self._queued_bytes + size > self._max_queued_bytes):
                    continue
                self._queued[addr] = size
                self._queued_bytes += size
                self._pool.submit(self._prefetch_one, addr, size)

    def _prefetch_one(self, addr: str, size: int) -> None:
        try:
            self.fill(addr, size)
        except Exception as e:  # the read that needs the chunk fetches it again and reports
            log.debug("read-ahead of chunk %s failed: %s", addr, e)
        finally:
            with self._lock:
                self._queued_bytes -= self._queued.pop(addr)

    def close(self) -> None:
        """Stop read-ahead: queued fetches are dropped, running ones finish."""
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)


def _sized(addr: str, size: int, data: bytes) -> bytes:
    if len(data) != size:
        raise IntegrityError(f"chunk {addr} has {len(data)} bytes, not the {size} its file lists")
    return data
