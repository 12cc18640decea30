"""FileReader: byte ranges of one file, assembled from its chunks, with read-ahead.

Sequential access (each read starting about where the last one ended) doubles a
read-ahead window, from FIRST_AHEAD up to MAX_AHEAD bytes past the read; a seek
resets it. The chunks beyond the window's old edge are handed to the reader's
`prefetch` once (which fetches them into the cache in runs, or, when they are cached,
has the kernel read them ahead). The whole chunks a read covers are read together
(their misses fetched in runs) and the last ones kept; a read of part of a chunk that
is not kept reads just that part from the cache.
"""

from __future__ import annotations

import bisect
import itertools
import threading

from ..core.chunks import MAX_CHUNK, ChunkRef, MiB
from .nowait import WouldBlock
from .in_place import InPlaceReader
from .reader import CachedChunkReader

FIRST_AHEAD = 1 * MiB
MAX_AHEAD = 16 * MiB
SEQUENTIAL_SLACK = 1 * MiB  # the kernel may deliver the pieces of a sequential read out of order
KEEP_BYTES = 3 * MiB  # whole chunks kept for the reads of their parts that follow
SMALL_CHUNK = MAX_CHUNK  # a chunk of format 2: cheap to read whole


class FileReader:
    """One per open file; thread-safe."""

    def __init__(self, reader: CachedChunkReader | InPlaceReader, chunks: list[ChunkRef]):
        self.reader = reader
        self.chunks = list(chunks)
        self._starts = [0, *itertools.accumulate(c.size for c in self.chunks)]
        self.size = self._starts[-1]
        self._lock = threading.Lock()
        self._next = 0  # where a sequential read would start
        self._window = 0  # bytes
        self._ahead = -1  # last chunk handed to prefetch
        self._kept: dict[int, bytes] = {}  # chunk index -> bytes, oldest first

    def read(self, offset: int, length: int) -> bytes:
        data = self.read_buffer(offset, length)
        return data if isinstance(data, bytes) else bytes(data)

    def read_buffer(self, offset: int, length: int) -> bytes | bytearray:
        """read(), but whole cached chunks come in the buffer they were read into, without
        the copy into bytes: for callers that only pass the bytes on (FUSE replies)."""
        end = min(offset + length, self.size)
        if offset >= end:
            return b""
        first = bisect.bisect_right(self._starts, offset) - 1
        last = bisect.bisect_right(self._starts, end - 1) - 1
        self.reader.prefetch(self._read_ahead(offset, end, last))
        if offset == self._starts[first] and end == self._starts[last + 1]:
            data = self.reader.read_cached(self.chunks[first:last + 1])  # whole chunks, one buffer
            if data is not None:
                return data
        with self._lock:
            kept = {i: self._kept[i] for i in range(first, last + 1) if i in self._kept}
        # Read whole, in one batch: the chunks the read covers, and the small ones it
        # crosses into (their rest is what a sequential reader asks for next).
        whole = [i for i in range(first, last + 1) if i not in kept and (
            offset <= self._starts[i] and self._starts[i + 1] <= end
            or first != last and self.chunks[i].size <= SMALL_CHUNK)]
        if whole:
            got = self.reader.read_chunks([self.chunks[i] for i in whole])
            kept.update(zip(whole, got))
            self._keep(zip(whole, got))
        pieces = []
        for i in range(first, last + 1):
            start = self._starts[i]
            a, b = max(offset - start, 0), min(end, self._starts[i + 1]) - start
            data = kept.get(i)
            if data is None:  # part of a chunk not kept: just that part, from the cache
                pieces.append(self.reader.read_range(self.chunks[i], a, b))
            else:
                pieces.append(data if (a, b) == (0, len(data)) else data[a:b])
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def read_nowait(self, offset: int, length: int) -> bytes | bytearray | None:
        """read_buffer() answered on the event loop, without a thread, when the chunks are
        cached and the kernel holds their pages: whole chunks straight into one buffer, a
        range as the checked pieces that hold it. Else None (read_buffer in a thread then
        fetches, drops what is damaged, reads ahead)."""
        end = min(offset + length, self.size)
        if offset >= end:
            return b""
        first = bisect.bisect_right(self._starts, offset) - 1
        last = bisect.bisect_right(self._starts, end - 1) - 1
        try:
            if offset == self._starts[first] and end == self._starts[last + 1]:
                data = self.reader.read_cached(self.chunks[first:last + 1], nowait=True)
            else:  # the pieces of each chunk that hold the range
                parts = [self.reader.read_range(
                    self.chunks[i], max(offset - self._starts[i], 0),
                    min(end, self._starts[i + 1]) - self._starts[i], nowait=True)
                    for i in range(first, last + 1)]
                data = parts[0] if len(parts) == 1 else b"".join(parts)
        except WouldBlock:
            return None
        with self._lock:
            self._next = end  # the next read in a thread is still sequential
        return data

    def _keep(self, items) -> None:
        with self._lock:
            for i, data in items:
                self._kept[i] = data
            total = sum(map(len, self._kept.values()))
            while total > KEEP_BYTES and len(self._kept) > 1:
                total -= len(self._kept.pop(next(iter(self._kept))))

    def _read_ahead(self, offset: int, end: int, last: int) -> list[ChunkRef]:
        """Chunks to prefetch after this read; updates the sequential state."""
        with self._lock:
            if abs(offset - self._next) <= SEQUENTIAL_SLACK:
                self._window = min(max(FIRST_AHEAD, 2 * self._window), MAX_AHEAD)
            else:
                self._window = 0
                self._ahead = last
            self._next = end
            start = max(self._ahead, last) + 1
            stop = bisect.bisect_left(self._starts, self._starts[last + 1] + self._window,
                                      lo=last + 1)
            stop = min(stop, len(self.chunks))
            if stop <= start:
                return []
            self._ahead = stop - 1
            return self.chunks[start:stop]

    def close(self) -> None:
        """Let go of the chunks kept in memory."""
        with self._lock:
            self._kept.clear()
