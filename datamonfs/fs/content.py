"""File content for the file system: the block cache's reader.

TEMPORARY stand-in until datamonfs.cache exports cached_repository/FileReader:
reads whole chunks straight from the store, keeping the last one per open file.
"""

from __future__ import annotations

import bisect
import threading

try:  # the real block cache, once it lands
    from ..cache import FileReader, cached_repository  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - replaced before release
    from ..core.config import Config
    from ..core.repository import Repository
    from ..core.stores import open_store

    def cached_repository(cfg: Config):
        repo = Repository(open_store(cfg.store))
        return repo, repo.chunks

    class FileReader:  # type: ignore[no-redef]
        def __init__(self, reader, chunks: list[tuple[str, int]]):
            self.reader = reader
            self.chunks = chunks
            self.starts = []
            pos = 0
            for _, size in chunks:
                self.starts.append(pos)
                pos += size
            self.size = pos
            self._lock = threading.Lock()
            self._last: tuple[int, bytes] | None = None

        def _chunk(self, i: int) -> bytes:
            with self._lock:
                if self._last and self._last[0] == i:
                    return self._last[1]
            data = self.reader.read_chunk(*self.chunks[i])
            with self._lock:
                self._last = (i, data)
            return data

        def read(self, offset: int, length: int) -> bytes:
            end = min(offset + length, self.size)
            out = []
            i = bisect.bisect_right(self.starts, offset) - 1
            while offset < end and i < len(self.chunks):
                data = self._chunk(i)
                lo = offset - self.starts[i]
                piece = data[lo:lo + end - offset]
                out.append(piece)
                offset += len(piece)
                i += 1
            return b"".join(out)

__all__ = ["FileReader", "cached_repository"]
