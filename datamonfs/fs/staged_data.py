"""Staged file content: written ranges only, in a sparse data file per file.

`data/INO` holds the bytes written to inode INO at their own offsets; the
`extents` rows say which ranges of it are real (disjoint, never adjacent). A
read takes written ranges from the data file, and the rest from the file's
base content below its `base_limit`, else zeros. So writing 4 bytes into a
10 GiB base file stages 4 bytes, and a truncate only moves numbers.

Bytes are written before the extent that makes them visible, so a crash leaves
at worst written bytes nobody points at. Callers hold the overlay's lock, except
for `assemble`, which reads base content (perhaps from the store) without it.
"""

from __future__ import annotations

import errno
import os
import threading
from collections import OrderedDict
from typing import Callable, Protocol

from ..core.model import Entry
from ..core.trees import TreeReader
from .overlay_db import FsError, OverlayDB

MAX_FDS = 128  # open data files; more are closed least recently used first
MAX_READERS = 64
RESERVE_MIN, RESERVE_MAX = 1 << 20, 64 << 20  # free space kept for the database


class ContentReader(Protocol):
    def read(self, offset: int, length: int) -> bytes: ...


OpenReader = Callable[[list[tuple[str, int]]], ContentReader]


class StagedData:
    def __init__(self, directory: str, db: OverlayDB, trees: TreeReader, open_reader: OpenReader):
        self.dir = directory
        self.db = db
        self.trees = trees
        self.open_reader = open_reader
        self._fds: OrderedDict[int, int] = OrderedDict()
        self._readers: OrderedDict[int, tuple[Entry, ContentReader]] = OrderedDict()
        self._readers_lock = threading.Lock()

    # -- writing -----------------------------------------------------------------

    def check_space(self, n: int) -> None:
        """ENOSPC before the disk is full: the database must always find room for the
        change that records a write, or the one that deletes a file to free space."""
        st = os.statvfs(self.dir)
        reserve = min(max(st.f_blocks * st.f_frsize // 50, RESERVE_MIN), RESERVE_MAX)
        if st.f_bavail * st.f_frsize - n < reserve:
            raise FsError(errno.ENOSPC, "the overlay's file system is (nearly) full")

    def pwrite(self, ino: int, offset: int, data: bytes) -> int:
        try:
            return os.pwrite(self._fd(ino), data, offset)
        except OSError as e:
            raise FsError(e.errno or errno.EIO, f"writing staged data: {e}") from None

    def add_extent(self, ino: int, start: int, end: int) -> None:
        """Record [start, end) as written, merged with what it overlaps or touches.
        Inside a transaction."""
        c = self.db.conn
        row = c.execute("SELECT start, end FROM extents WHERE ino = ? AND start <= ? "
                        "ORDER BY start DESC LIMIT 1", (ino, start)).fetchone()
        if row is not None and row[1] >= start:
            start, end = row[0], max(end, row[1])
        row = c.execute("SELECT max(end) FROM extents WHERE ino = ? AND start >= ? AND start <= ?",
                        (ino, start, end)).fetchone()
        if row[0] is not None:
            end = max(end, row[0])
        c.execute("DELETE FROM extents WHERE ino = ? AND start >= ? AND start <= ?",
                  (ino, start, end))
        c.execute("INSERT INTO extents VALUES (?, ?, ?)", (ino, start, end))

    def truncate(self, ino: int, size: int) -> None:
        """Forget written bytes at and past `size`. Inside a transaction."""
        c = self.db.conn
        c.execute("DELETE FROM extents WHERE ino = ? AND start >= ?", (ino, size))
        c.execute("UPDATE extents SET end = ? WHERE ino = ? AND start < ? AND end > ?",
                  (size, ino, size, size))

    def shrink(self, ino: int, size: int) -> None:
        """Give back the space past `size` (after the truncate is committed)."""
        try:
            os.truncate(os.path.join(self.dir, str(ino)), size)
        except OSError:
            pass  # only space: bytes past the extents are never read

    # -- reading -----------------------------------------------------------------

    def extents(self, ino: int, start: int, end: int) -> list[tuple[int, int]]:
        """Written ranges overlapping [start, end), clipped to it."""
        rows = []
        first = self.db.one("SELECT start, end FROM extents WHERE ino = ? AND start <= ? "
                            "ORDER BY start DESC LIMIT 1", (ino, start))
        if first is not None and first[1] > start:
            rows.append(first)
        rows += self.db.all("SELECT start, end FROM extents WHERE ino = ? AND start > ? "
                            "AND start < ? ORDER BY start", (ino, start, end))
        return [(max(a, start), min(b, end)) for a, b in rows]

    def changed_span(self, ino: int) -> tuple[int, int] | None:
        """From the first written byte to the end of the last written range."""
        row = self.db.one("SELECT min(start), max(end) FROM extents WHERE ino = ?", (ino,))
        return None if row[0] is None else (row[0], row[1])

    def pieces(self, ino: int, start: int, end: int, staged: bool) -> list:
        """[start, end) as written bytes, and (a, b) gaps for `assemble` to fill."""
        out: list = []
        pos = start
        for a, b in (self.extents(ino, start, end) if staged else ()):
            if a > pos:
                out.append((pos, a))
            data = os.pread(self._fd(ino), b - a, a)
            out.append(data + bytes(b - a - len(data)))  # a sparse tail reads as zeros
            pos = b
        if pos < end:
            out.append((pos, end))
        return out

    def assemble(self, ino: int, pieces: list, base_limit: int, origin: Entry | None) -> bytes:
        """Fill the gaps: base content below base_limit, zeros above."""
        reader = None
        out = []
        for p in pieces:
            if isinstance(p, bytes):
                out.append(p)
                continue
            a, b = p
            if a < base_limit:
                reader = reader or self._reader(ino, origin)
                out.append(reader.read(a, min(b, base_limit) - a))
                a = min(b, base_limit)
            if a < b:
                out.append(bytes(b - a))
        return out[0] if len(out) == 1 else b"".join(out)

    def _reader(self, ino: int, origin: Entry) -> ContentReader:
        with self._readers_lock:
            hit = self._readers.get(ino)
            if hit is not None and hit[0] is origin:
                self._readers.move_to_end(ino)
                return hit[1]
        reader = self.open_reader(self.trees.chunks(origin))
        with self._readers_lock:
            self._readers[ino] = (origin, reader)
            if len(self._readers) > MAX_READERS:
                self._readers.popitem(last=False)
        return reader

    # -- files -------------------------------------------------------------------

    def dup_fd(self, ino: int) -> int:
        """A descriptor of a file's data that stays valid when the cache closes its own."""
        return os.dup(self._fd(ino))

    def sync_names(self) -> None:
        """Make the names of new data files durable."""
        fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def space(self) -> os.statvfs_result:
        return os.statvfs(self.dir)

    def _fd(self, ino: int) -> int:
        fd = self._fds.get(ino)
        if fd is None:
            try:
                fd = os.open(os.path.join(self.dir, str(ino)),
                             os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as e:
                raise FsError(e.errno or errno.EIO, f"staged data of inode {ino}: {e}") from None
            self._fds[ino] = fd
            while len(self._fds) > MAX_FDS:
                os.close(self._fds.popitem(last=False)[1])
        else:
            self._fds.move_to_end(ino)
        return fd

    def forget(self, ino: int) -> None:
        """Close what is kept open for a file the kernel no longer knows."""
        fd = self._fds.pop(ino, None)
        if fd is not None:
            os.close(fd)
        with self._readers_lock:
            self._readers.pop(ino, None)

    def drop(self, ino: int) -> None:
        """Delete a file's staged bytes (after the rows naming them are gone)."""
        self.forget(ino)
        try:
            os.unlink(os.path.join(self.dir, str(ino)))
        except FileNotFoundError:
            pass

    def keep_only(self, staged: set[int]) -> None:
        """After a crash: delete data files no row names."""
        for name in os.listdir(self.dir):
            if not name.isdigit() or int(name) not in staged:
                try:
                    os.unlink(os.path.join(self.dir, name))
                except FileNotFoundError:
                    pass

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
