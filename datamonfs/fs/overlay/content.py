"""File content: where a FUSE write is staged, and how a read puts a file together.

`data/INO` holds the bytes written to inode INO at their own offsets (a sparse
file); the `extents` rows say which ranges of it are real (disjoint, never
adjacent; nodes.Extents). A read takes written ranges from the data file, and the
rest from the file's base content below its `base_limit`, else zeros. So writing
4 bytes into a 10 GiB base file stages 4 bytes, and a truncate only moves numbers.

`Content.write` (a FUSE write) writes the bytes to the data file first, then
records the extent that shows them in one transaction, so a crash leaves at worst
written bytes nobody points at. Data files are deleted only after the rows that
name them (`StagedData.drop`, after the transaction commits).

`StagedData` is called with the overlay's lock held, except `assemble`, which reads
base content (perhaps from the store) without it.
"""

from __future__ import annotations

import errno
import os
import threading
from typing import Callable, Protocol

from ...core.model import DIR, FILE, Entry
from ...core.trees import TreeReader
from ...lru import LRU
from ..vfs import FsError
from .db import OverlayDB, Tx
from .nodes import Extents, NodeCache, now

MAX_FDS = 128  # open data files; more are closed least recently used first
MAX_READERS = 64
RESERVE_MIN, RESERVE_MAX = 1 << 20, 64 << 20  # free space kept for the database


class RangeReader(Protocol):
    """A base file's bytes (the block cache's FileReader)."""

    def read(self, offset: int, length: int) -> bytes: ...


OpenReader = Callable[[list[tuple[str, int]]], RangeReader]


def _close_fd(ino: int, fd: int) -> None:
    os.close(fd)


class StagedData:
    def __init__(self, directory: str, extents: Extents, trees: TreeReader,
                 open_reader: OpenReader):
        self.dir = directory
        self.extents = extents
        self.trees = trees
        self.open_reader = open_reader
        self._fds: LRU[int, int] = LRU(MAX_FDS, dispose=_close_fd)
        self._readers: LRU[int, tuple[Entry, RangeReader]] = LRU(MAX_READERS)
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

    def truncate(self, tx: Tx, ino: int, size: int, staged: bool) -> None:
        """Forget written bytes at and past `size`, in a transaction; the data file's
        space past it is given back once that commits."""
        self.extents.truncate(ino, size)
        if staged:
            tx.after(lambda: self._shrink(ino, size))

    def _shrink(self, ino: int, size: int) -> None:
        try:
            os.truncate(os.path.join(self.dir, str(ino)), size)
        except OSError:
            pass  # only space: bytes past the extents are never read

    # -- reading -----------------------------------------------------------------

    def pieces(self, ino: int, start: int, end: int, staged: bool) -> list:
        """[start, end) as written bytes, and (a, b) gaps for `assemble` to fill."""
        out: list = []
        pos = start
        for a, b in (self.extents.within(ino, start, end) if staged else ()):
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

    def _reader(self, ino: int, origin: Entry) -> RangeReader:
        with self._readers_lock:
            hit = self._readers.get(ino)
            if hit is not None and hit[0] is origin:
                return hit[1]
        reader = self.open_reader(self.trees.chunks(origin))
        with self._readers_lock:
            self._readers[ino] = (origin, reader)
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
        return fd

    def forget(self, ino: int) -> None:
        """Close what is kept open for a file the kernel no longer knows."""
        self._fds.pop(ino)
        with self._readers_lock:
            self._readers.pop(ino)

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
        self._fds.clear()


class Content:
    """The reads, writes and syncs of `Overlay` (overlay.py), which it is a part of."""

    lock: threading.RLock
    db: OverlayDB
    nodes: NodeCache
    data: StagedData

    def write(self, ino: int, offset: int, data: bytes) -> int:
        """A FUSE write: bytes into data/INO, then (one transaction) the extent that
        shows them and the file's new size and times."""
        with self.lock:
            node = self.nodes.get(ino)
            if node.kind != FILE:
                raise FsError(errno.EBADF)
            self.data.check_space(len(data))
            if not (node.persisted and node.staged):
                with self.db.tx() as tx:
                    self.nodes.persist(node, tx)
                    tx.set(node, staged=True)
            n = self.data.pwrite(ino, offset, data)
            if n:
                t = now()
                with self.db.tx() as tx:
                    self.data.extents.add(ino, offset, offset + n)
                    tx.set(node, size=max(node.size, offset + n), mtime=t, ctime=t)
            return n

    def read(self, ino: int, offset: int, length: int, keep: bool = True) -> bytes:
        """Bytes of a file as staged: written ranges, else the base's, else zeros."""
        with self.lock:
            node = self.nodes.get(ino, keep)
            if node.kind != FILE:
                raise FsError(errno.EISDIR if node.kind == DIR else errno.EINVAL)
            end = min(offset + length, node.size)
            if offset >= end:
                return b""
            pieces = self.data.pieces(ino, offset, end, node.staged)
            limit, origin = node.base_limit, node.origin
        return self.data.assemble(ino, pieces, limit, origin)  # base bytes: outside the lock

    def changed_span(self, ino: int) -> tuple[int, int] | None:
        with self.lock:
            return self.data.extents.span(ino)

    def fsync(self, ino: int | None = None) -> None:
        """Make a file's staged data and every committed change durable. Holds the lock
        only to find the file: the syncs themselves may take a while."""
        with self.lock:
            node = self.nodes.cached(ino) if ino is not None else None
            fd = self.data.dup_fd(node.ino) if node is not None and node.staged else None
        if fd is not None:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self.data.sync_names()
        self.db.sync_log()

    def space(self) -> os.statvfs_result:
        return self.data.space()
