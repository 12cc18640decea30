"""File bytes for FUSE reads: whole segments through the block cache, slices served in place.

The kernel asks for a file in pieces of at most a few hundred KiB. A trip to a worker
thread costs more than copying the bytes, so a file is read in segments of about
SEGMENT bytes (consecutive chunks: one chunk of format 1, a dozen or so of format 2),
each fetched once through the cache's FileReader (whose read-ahead sees one sequential
read per segment) and kept in a small LRU shared by every open file; the pieces are
then sliced out of it on the event loop, without a copy. A segment the kernel is
waiting for whose chunks are cached and in the page cache is read on the event loop
(preadv with RWF_NOWAIT, straight into its buffer); anything else, and every segment
read ahead, in a thread: a read-ahead's copy then overlaps with the event loop's
replies to the kernel, so a sequential reader uses both cores. Concurrent
requests for one segment share a single fetch, and its failure. A segment is known by
the chunks (addresses and sizes) it is made of, so files that share them share it.

A file read in order has its next few segments fetched ahead, in parallel, so the
cache's disk reads and store fetches overlap with serving the kernel. (Measured
against fetching them one by one in order: faster both cold and warm.)

A read that jumps elsewhere in the file, into a segment that is not in the LRU, reads
just its bytes (a cached chunk's range, on the event loop if the page cache holds it,
else in a thread) and keeps nothing: random
readers would otherwise read a whole segment per request and push out the sequential
readers' segments.
"""

from __future__ import annotations

import bisect

import trio

from ..core.chunks import ChunkRef
from ..errors import IntegrityError
from .loading import LoadingCache

DEFAULT_HOT_BYTES = 64 << 20
READ_AHEAD_SEGMENTS = 4
SEGMENT = 1 << 20


class OpenFile:
    __slots__ = ("reader", "segments", "starts", "size", "last")

    def __init__(self, reader, chunks: list[ChunkRef]):
        self.reader = reader  # the block cache's FileReader for this file
        self.segments: list[tuple[tuple, int]] = []  # (its chunks' (addr, size), bytes)
        self.starts = [0]
        key: list[tuple[str, int]] = []
        size = 0
        for i, ref in enumerate(chunks):
            key.append(ref.content)
            size += ref.size
            if size >= SEGMENT or i == len(chunks) - 1:
                self.segments.append((tuple(key), size))
                self.starts.append(self.starts[-1] + size)
                key, size = [], 0
        self.size = self.starts[-1]
        self.last = -1  # last segment read, to tell sequential readers


class ContentReader:
    def __init__(self, limiter: trio.CapacityLimiter, max_bytes: int = DEFAULT_HOT_BYTES):
        self.limiter = limiter
        self.hot: LoadingCache[str, bytes] = LoadingCache(max_bytes, len)

    async def read(self, f: OpenFile, offset: int, length: int):
        end = min(offset + length, f.size)
        if offset >= end:
            return b""
        first = bisect.bisect_right(f.starts, offset) - 1
        last = bisect.bisect_right(f.starts, end - 1) - 1
        sequential = first in (f.last, f.last + 1)
        f.last = last
        if sequential:
            self._read_ahead(f, last)
        elif not all(f.segments[i][0] in self.hot for i in range(first, last + 1)):
            return await self._direct(f, offset, end - offset)
        if first == last:
            start = f.starts[first]
            data = await self._chunk(f, first)
            return memoryview(data)[offset - start:end - start]
        pieces = []
        for i in range(first, last + 1):
            start = f.starts[i]
            data = await self._chunk(f, i)
            pieces.append(memoryview(data)[max(offset - start, 0):end - start])
        return b"".join(pieces)

    def _loader(self, f: OpenFile, i: int, wanted: bool = True):
        async def load() -> bytes:
            return await self._direct(f, f.starts[i], f.segments[i][1], wanted)
        return load

    async def _direct(self, f: OpenFile, offset: int, length: int, wanted: bool = True):
        """Bytes from the block cache (or a local store's packs, read in place). A read the
        kernel waits for is answered on the event loop when they are cached and in the page
        cache (a thread hand-off costs more than the copy); else, and for read-ahead, in a
        thread: there its copy overlaps with the event loop's replies to the kernel, so a
        sequential reader uses both cores."""
        data = f.reader.read_nowait(offset, length) if wanted else None
        if data is None:
            data = await trio.to_thread.run_sync(f.reader.read_buffer, offset, length,
                                                 limiter=self.limiter)
        return data

    async def _chunk(self, f: OpenFile, i: int) -> bytes:
        key, size = f.segments[i]
        data = await self.hot.get(key, self._loader(f, i))
        if len(data) != size:  # kept for another file, whose list gave the real sizes
            raise IntegrityError(f"chunks from {key[0][0]} on hold {len(data)} bytes, not the "
                                 f"{size} the file lists")
        return data

    def _read_ahead(self, f: OpenFile, last: int) -> None:
        for i in range(last + 1, min(last + 1 + READ_AHEAD_SEGMENTS, len(f.segments))):
            self.hot.prefetch(f.segments[i][0], self._loader(f, i, wanted=False))
