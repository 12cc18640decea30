"""CachedChunkReader: chunk reads through the block cache.

A hit is an index lookup plus a read of the pieces wanted, each checked. Misses are
fetched from the source in runs (neighbouring chunks of one pack, one ranged request
each: core.chunks.runs) once: other threads that miss the same chunks share that fetch
and its outcome, and other processes wait for it (fetch.py), all within one store
deadline per read. The size a file's chunk list gives is checked against the chunk's
real size on hits and misses alike: a list that lies is an IntegrityError, never
bytes. At most `workers` fetches from the source run at once per reader; read-ahead
(`prefetch`) runs in a pool of as many threads, with a bounded queue.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from ..core.chunks import ChunkReader, ChunkRef, runs
from ..core.stores.base import deadline, time_left
from ..errors import IntegrityError, StoreUnavailable
from .blocks import BlockCache
from .nowait import WouldBlock
from .fetch import FETCH_WAIT, Fetcher
from .index import log


class CachedChunkReader:
    """Implements core.chunks.ChunkReader; with `cache=None` it reads straight from the source."""

    def __init__(self, cache: BlockCache | None, source: ChunkReader, workers: int = 8):
        self.cache = cache
        self.source = source
        self.fetcher = Fetcher(cache) if cache is not None else None
        self._fetch_slots = threading.BoundedSemaphore(workers)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="datamonfs-prefetch")
        self._lock = threading.Lock()
        self._queued: dict[str, int] = {}  # addr -> size, of chunks queued for read-ahead
        self._max_queued = 4 * workers  # runs
        self._runs_queued = 0
        # Read-ahead beyond a fraction of the cache would evict what is being read.
        self._max_queued_bytes = cache.limit // 4 if cache else 0
        self._queued_bytes = 0
        self._closed = False

    def read_chunk(self, ref: ChunkRef) -> bytes:
        """The chunk's bytes, verified (by the source on a miss, by digest on a hit)."""
        return self.read_chunks([ref])[0]

    def read_chunks(self, refs: Sequence[ChunkRef]) -> list[bytes]:
        """The bytes of each chunk, in order; the missing ones fetched in runs."""
        if self.cache is None:
            with deadline():
                return self._load(list(refs))
        out = self.cache.get_many([ref.content for ref in refs])
        missing = {ref.addr: ref for ref, data in zip(refs, out) if data is None}
        if missing:
            got = self._fetch(list(missing.values()))
            # One fetch per address: a list naming a chunk twice with two sizes lies once.
            out = [data if data is not None else _sized(ref, got[ref.addr])
                   for ref, data in zip(refs, out)]
        return out  # type: ignore[return-value]

    def read_range(self, ref: ChunkRef, start: int, end: int, nowait: bool = False) -> bytes:
        """Bytes [start, end) of the chunk: on a hit, only the pieces holding them are
        read (see BlockCache.get_range); on a miss the chunk is fetched and cached whole.
        With `nowait`, on the event loop: WouldBlock where a thread must do it."""
        if not 0 <= start <= end <= ref.size:
            raise ValueError(f"range [{start}, {end}) is outside a chunk of {ref.size} bytes")
        if self.cache is not None:
            data = self.cache.get_range(ref.addr, start, end, ref.size, nowait)
            if data is not None:
                return data
        elif nowait:
            raise WouldBlock
        return self.read_chunk(ref)[start:end]

    def read_cached(self, refs: Sequence[ChunkRef], nowait: bool = False) -> bytearray | None:
        """The bytes of consecutive chunks in one buffer when all are cached and good, else
        None: read straight into it (BlockCache.read_into). With `nowait`, on the event
        loop: WouldBlock where a thread must do it."""
        if self.cache is None:
            if nowait:
                raise WouldBlock
            return None
        buf = bytearray(sum(ref.size for ref in refs))
        return buf if self.cache.read_into([ref.content for ref in refs], buf, nowait) else None

    def fill(self, refs: Sequence[ChunkRef]) -> None:
        """Make sure chunks are cached, without reading them back."""
        if self.cache is not None:
            missing = {r.addr: r for r in refs if not self.cache.contains(r.addr)}
            if missing:
                self._fetch(list(missing.values()))

    def _fetch(self, refs: list[ChunkRef]) -> dict[str, bytes]:
        with deadline():  # waiting for other fetches of them, then fetching: one deadline
            return self.fetcher.fetch(refs, self._load)

    def _load(self, refs: list[ChunkRef]) -> list[bytes]:
        """Verified bytes of chunks from the source, run by run."""
        out: list[bytes] = []
        for run in runs(refs):
            if not self._fetch_slots.acquire(timeout=max(time_left(FETCH_WAIT), 0)):
                raise StoreUnavailable(f"gave up waiting to fetch chunk {run[0].addr} (every "
                                       "fetch slot is busy with a store that does not answer)")
            try:
                got = self.source.read_chunks(run)
            finally:
                self._fetch_slots.release()
            out += [_sized(ref, data) for ref, data in zip(run, got)]
        return out

    def prefetch(self, refs: Sequence[ChunkRef]) -> None:
        """Start fetching chunks into the cache in the background, a run per task; returns
        at once. Cached chunks are only read ahead by the kernel. Runs beyond the queue's
        bound are skipped (the read that needs a chunk fetches it)."""
        if self.cache is None:
            return
        cached = self.cache.preload([ref.addr for ref in refs])  # no fetch for those
        wanted = [ref for ref, hit in zip(refs, cached) if not hit]
        for run in runs(wanted):
            with self._lock:
                run = [ref for ref in run if ref.addr not in self._queued]
                size = sum(ref.size for ref in run)
                if (self._closed or not run or self._runs_queued >= self._max_queued
                        or self._queued_bytes + size > self._max_queued_bytes):
                    continue
                for ref in run:
                    self._queued[ref.addr] = ref.size
                self._runs_queued += 1
                self._queued_bytes += size
                self._pool.submit(self._prefetch_run, run, size)

    def _prefetch_run(self, run: list[ChunkRef], size: int) -> None:
        try:
            self.fill(run)
        except Exception as e:  # the read that needs a chunk fetches it again and reports
            log.debug("read-ahead of chunk %s failed: %s", run[0].addr, e)
        finally:
            with self._lock:
                for ref in run:
                    self._queued.pop(ref.addr, None)
                self._runs_queued -= 1
                self._queued_bytes -= size

    def close(self) -> None:
        """Stop read-ahead: queued fetches are dropped, running ones finish."""
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)


def _sized(ref: ChunkRef, data: bytes) -> bytes:
    if len(data) != ref.size:
        raise IntegrityError(f"chunk {ref.addr} has {len(data)} bytes, not the {ref.size} its "
                             "file lists")
    return data
