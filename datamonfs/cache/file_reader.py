"""FileReader: byte ranges of one file, assembled from its chunks, with read-ahead.

Sequential access (each read starting about where the last one ended) doubles a
read-ahead window, up to MAX_WINDOW chunks past the one being read; a seek
resets it. Each chunk beyond the window's old edge is handed to the reader's
`prefetch` once (which fetches it into the cache, or, when it is cached, has the
kernel read its file ahead). The last whole chunks read are kept; a read of part of
a chunk that is not kept reads just that part from the cache.
"""

from __future__ import annotations

import bisect
import itertools
import threading

from .reader import CachedChunkReader

MAX_WINDOW = 16  # chunks, about 20 MiB
SEQUENTIAL_SLACK = 1 << 20  # the kernel may deliver the pieces of a sequential read out of order
KEEP_CHUNKS = 2


class FileReader:
    """One per open file; thread-safe."""

    def __init__(self, reader: CachedChunkReader, chunks: list[tuple[str, int]]):
        self.reader = reader
        self.chunks = list(chunks)
        self._starts = [0, *itertools.accumulate(size for _, size in self.chunks)]
        self.size = self._starts[-1]
        self._lock = threading.Lock()
        self._next = 0  # where a sequential read would start
        self._window = 0
        self._ahead = -1  # last chunk handed to prefetch
        self._kept: dict[int, bytes] = {}  # chunk index -> bytes, oldest first

    def read(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self.size)
        if offset >= end:
            return b""
        first = bisect.bisect_right(self._starts, offset) - 1
        last = bisect.bisect_right(self._starts, end - 1) - 1
        self.reader.prefetch(self._read_ahead(offset, end, last))
        if first == last:  # a slice of one chunk, or the chunk itself (no copy)
            start = self._starts[first]
            return self._piece(first, offset - start, end - start)
        pieces = []
        for i in range(first, last + 1):
            start = self._starts[i]
            pieces.append(self._piece(i, max(offset - start, 0), min(end, self._starts[i + 1]) - start))
        return b"".join(pieces)

    def _piece(self, i: int, start: int, end: int) -> bytes:
        """Bytes [start, end) of chunk i: from the kept chunks, the whole chunk (then
        kept), or just the range read from the cache."""
        with self._lock:
            data = self._kept.get(i)
        if data is not None:
            return data[start:end]
        addr, size = self.chunks[i]
        if (start, end) == (0, size):
            return self._chunk(i)
        return self.reader.read_range(addr, size, start, end)

    def _read_ahead(self, offset: int, end: int, last: int) -> list[tuple[str, int]]:
        """Chunks to prefetch after this read; updates the sequential state."""
        with self._lock:
            if abs(offset - self._next) <= SEQUENTIAL_SLACK:
                self._window = min(max(1, 2 * self._window), MAX_WINDOW)
            else:
                self._window = 0
                self._ahead = last
            self._next = end
            start = max(self._ahead, last) + 1
            stop = min(last + 1 + self._window, len(self.chunks))
            if stop <= start:
                return []
            self._ahead = stop - 1
            return self.chunks[start:stop]

    def close(self) -> None:
        """Let go of the chunks kept in memory."""
        with self._lock:
            self._kept.clear()

    def _chunk(self, i: int) -> bytes:
        with self._lock:
            data = self._kept.get(i)
        if data is None:
            addr, size = self.chunks[i]
            data = self.reader.read_range(addr, size, 0, size)
            with self._lock:
                self._kept[i] = data
                while len(self._kept) > KEEP_CHUNKS:
                    del self._kept[next(iter(self._kept))]
        return data
