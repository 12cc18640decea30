"""File content: where a FUSE write is staged, and how a read puts a file together.

`data/INO` holds the bytes written to inode INO at their own offsets (a sparse
file); the `extents` rows say which ranges of it are real (disjoint, never
adjacent; extents.Extents). A small file's bytes (all written below INLINE_MAX)
are kept in its extent rows instead, so that creating one costs no file of its
own: no open, no fsync and no unlink of a data file, only rows of the group
commit (db.py). A write past INLINE_MAX, or a fallocate, moves them to the data
file first (`Content._to_file`). A read takes written ranges from the data file, and the
rest from the file's base content below its `base_limit`, else zeros. So writing
4 bytes into a 10 GiB base file stages 4 bytes, and a truncate only moves numbers.

`Content.write` (a FUSE write) writes the bytes to the data file first, then
records the extent that shows them in one transaction, so a crash leaves at worst
written bytes nobody points at (and a data file no row names, deleted when the
overlay is opened again). Data files are deleted only after the rows that name
them (`StagedData.drop`, once the change that deleted them is committed).

`StagedData` is called with the overlay's lock held, except `assemble`, which reads
base content (perhaps from the store) without it.

`Content.fallocate` (fallocate(2) on the mount): allocating reserves the range in
the data file (so later writes there do not run out of space) and may extend the
file; punching a hole or zeroing a range punches the data file and records the
range as written, so it reads as zeros whatever the base had there.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from typing import Callable, Protocol

from ...core.model import DIR, FILE, Entry
from ...core.trees import TreeReader
from ...lru import LRU
from ..vfs import FsError
from .db import OverlayDB, Tx
from .extents import Extents
from .nodes import Node, NodeCache, now

MAX_FDS = 128  # open data files; more are closed least recently used first
INLINE_MAX = 64 << 10  # a file written only below this keeps its bytes in its rows
MAX_READERS = 64
RESERVE_MIN, RESERVE_MAX = 1 << 20, 64 << 20  # free space kept for the database
# fallocate(2) modes (linux/falloc.h) a writable mount supports; the others shift content
# (COLLAPSE_RANGE, INSERT_RANGE) or concern shared extents (UNSHARE_RANGE): EOPNOTSUPP.
KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE = 0x01, 0x02, 0x10
FALLOCATE_MODES = KEEP_SIZE | PUNCH_HOLE | ZERO_RANGE
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    """fallocate(2) itself (os.posix_fallocate would write zeros where it is missing)."""
    if _libc.fallocate(fd, mode, offset, length) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


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
        self.nowait = True  # the file system of data/ reads with RWF_NOWAIT

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

    def record(self, ino: int, start: int, end: int, data: bytes | None) -> None:
        """Record [start, end) as written, merged with the ranges it overlaps or touches:
        its bytes (`data`) in the row, or (None) already in the data file. Ranges whose
        bytes were in rows move to the data file when merged into one that is not,
        except where the new bytes cover them. Inside a transaction."""
        rows = self.extents.touching(ino, start, end)
        lo = min([start] + [a for a, _, _ in rows])
        hi = max([end] + [b for _, b, _ in rows])
        if data is not None and any(blob is None for _, _, blob in rows):
            self.pwrite(ino, start, data)  # next to bytes in the file: there too
            data = None
        if data is None:
            for a, b, blob in rows:
                if blob is not None and a < start:
                    self.pwrite(ino, a, blob[:start - a])
                if blob is not None and b > end:
                    self.pwrite(ino, end, blob[end - a:])
            self.extents.replace(ino, lo, hi, None)
            return
        buf = bytearray(hi - lo)
        for a, b, blob in rows:
            buf[a - lo:b - lo] = blob
        buf[start - lo:end - lo] = data
        self.extents.replace(ino, lo, hi, bytes(buf))

    def truncate(self, tx: Tx, ino: int, size: int, staged: bool) -> None:
        """Forget written bytes at and past `size`, in a transaction; the data file's
        space past it is given back once that commits. The caller commits it (flush)
        before it lets go of the lock: a write past `size` made later would otherwise be
        cut off by that."""
        self.extents.truncate(ino, size)
        if staged:
            tx.once_committed(lambda: self._shrink(ino, size))

    def punch(self, ino: int, start: int, end: int) -> None:
        """Make [start, end) of a data file read as zeros, giving its space back."""
        try:
            fallocate(self._fd(ino), PUNCH_HOLE | KEEP_SIZE, start, end - start)
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.ENOSYS):
                raise FsError(e.errno or errno.EIO, f"punching staged data: {e}") from None
            for at in range(start, end, 1 << 20):  # a file system without holes
                self.pwrite(ino, at, bytes(min(1 << 20, end - at)))

    def reserve(self, ino: int, start: int, length: int) -> None:
        """Allocate [start, start + length) of a data file, so that writes there find room
        (skipped where the overlay's file system cannot allocate ahead)."""
        try:
            fallocate(self._fd(ino), KEEP_SIZE, start, length)
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.ENOSYS):
                raise FsError(e.errno or errno.EIO, f"allocating staged data: {e}") from None

    def allocated(self, ino: int) -> int:
        """Bytes a file's staged data occupies: its data file on disk (written ranges and
        reservations, none when it has none), its bytes kept in rows by 4 KiB blocks."""
        fd = self._fds.get(ino)
        try:
            blocks = (os.fstat(fd) if fd is not None else
                      os.stat(os.path.join(self.dir, str(ino)))).st_blocks
        except FileNotFoundError:
            blocks = 0
        return blocks * 512 + -(-self.extents.row_bytes(ino) // 4096) * 4096

    def _shrink(self, ino: int, size: int) -> None:
        try:
            os.truncate(os.path.join(self.dir, str(ino)), size)
        except OSError:
            pass  # only space: bytes past the extents are never read

    # -- reading -----------------------------------------------------------------

    def pieces(self, ino: int, start: int, end: int, staged: bool, nowait: bool = False) -> list:
        """[start, end) as written bytes, and (a, b) gaps for `assemble` to fill. With
        `nowait`, bytes not in the page cache raise BlockingIOError instead of waiting."""
        out: list = []
        pos = start
        for a, b, blob in (self.extents.within(ino, start, end) if staged else ()):
            if a > pos:
                out.append((pos, a))
            if blob is not None:
                out.append(blob)
                pos = b
                continue
            if nowait:
                if not self.nowait:
                    raise BlockingIOError
                buf = bytearray(b - a)
                try:
                    n = os.preadv(self._fd(ino), [buf], a, os.RWF_NOWAIT)
                except OSError as e:
                    if e.errno in (errno.EOPNOTSUPP, errno.EINVAL):  # tmpfs, say
                        self.nowait = False
                        raise BlockingIOError from None
                    raise
                data = bytes(buf[:n])
            else:
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

    def existing_fd(self, ino: int) -> int | None:
        """`dup_fd` of a data file that exists (None: the file has none)."""
        fd = self._fds.get(ino)
        if fd is not None:
            return os.dup(fd)
        try:
            return os.open(os.path.join(self.dir, str(ino)), os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return None

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
        """A FUSE write, in one transaction with the extent that shows it and the file's
        new size and times (the file persisted and marked staged with its first one).
        A small file's bytes go into the row (INLINE_MAX). Other bytes go to data/INO
        first, without the overlay's lock, so writes to different files, or to different
        ranges of one (the kernel sends no overlapping writes at once, and holds
        truncates and fallocates of a file until its writes are answered), proceed in
        parallel; the rows follow."""
        end = offset + len(data)
        with self.lock:
            node = self.nodes.get(ino)
            if node.kind != FILE:
                raise FsError(errno.EBADF)
            self.data.check_space(len(data))
            if end <= INLINE_MAX and not (node.staged and self.data.extents.in_file(ino)):
                self._record(node, offset, end, data)
                return len(data)
            self._to_file(node)
            fd = self.data.dup_fd(ino)
        try:
            n = os.pwrite(fd, data, offset)
        except OSError as e:
            raise FsError(e.errno or errno.EIO, f"writing staged data: {e}") from None
        finally:
            os.close(fd)
        if n:
            with self.lock:
                self._record(node, offset, offset + n, None)
        return n

    def _record(self, node: Node, start: int, end: int, data: bytes | None) -> None:
        t = now()
        with self.db.tx() as tx:
            self.nodes.persist(node, tx)
            self.data.record(node.ino, start, end, data)
            tx.set(node, staged=True, size=max(node.size, end), mtime=t, ctime=t)

    def _to_file(self, node: Node) -> None:
        """Move a file's bytes kept in rows to its data file: bytes first, then the rows
        say so."""
        rows = self.data.extents.in_rows(node.ino) if node.staged else []
        if rows:
            for a, _, blob in rows:
                self.data.pwrite(node.ino, a, blob)
            with self.db.tx():
                self.data.extents.move_to_file(node.ino)

    def read(self, ino: int, offset: int, length: int, keep: bool = True,
             nowait: bool = False) -> bytes | None:
        """Bytes of a file as staged: written ranges, else the base's, else zeros. With
        `nowait`, None where that would wait: for base content, or for staged bytes not in
        the page cache (the event loop answers the rest at once; threads do these)."""
        with self.lock:
            node = self.nodes.get(ino, keep)
            if node.kind != FILE:
                raise FsError(errno.EISDIR if node.kind == DIR else errno.EINVAL)
            end = min(offset + length, node.size)
            if offset >= end:
                return b""
            try:
                pieces = self.data.pieces(ino, offset, end, node.staged, nowait)
            except BlockingIOError:
                return None
            limit, origin = node.base_limit, node.origin
        if nowait and any(not isinstance(p, bytes) and p[0] < limit for p in pieces):
            return None
        return self.data.assemble(ino, pieces, limit, origin)  # base bytes: outside the lock

    def fallocate(self, ino: int, mode: int, offset: int, length: int) -> Node:
        """fallocate(2): allocate (mode 0 may extend the file, KEEP_SIZE not), punch a hole
        (PUNCH_HOLE | KEEP_SIZE) or zero a range (ZERO_RANGE, which may extend it)."""
        if mode & ~FALLOCATE_MODES or (mode & PUNCH_HOLE and not mode & KEEP_SIZE) or (
                mode & PUNCH_HOLE and mode & ZERO_RANGE):
            raise FsError(errno.EOPNOTSUPP)
        if offset < 0 or length <= 0:
            raise FsError(errno.EINVAL)
        end = offset + length
        with self.lock:
            node = self.nodes.get(ino)
            if node.kind != FILE:
                raise FsError(errno.ENODEV)
            zeroing = bool(mode & (PUNCH_HOLE | ZERO_RANGE))
            size = node.size if mode & KEEP_SIZE else max(node.size, end)
            zero_end = min(end, size) if zeroing else offset
            self.data.check_space(0 if zeroing else length)
            if not (node.persisted and node.staged):
                with self.db.tx() as tx:
                    self.nodes.persist(node, tx)
                    tx.set(node, staged=True)
            self._to_file(node)
            if zero_end > offset:  # bytes first, then the extent that shows them
                self.data.punch(ino, offset, zero_end)
            elif not zeroing:
                self.data.reserve(ino, offset, length)
            t = now()
            with self.db.tx() as tx:
                if zero_end > offset:
                    self.data.record(ino, offset, zero_end, None)
                changed = zero_end > offset or size != node.size
                tx.set(node, size=size, ctime=t, mtime=t if changed else node.mtime)
            return node

    def blocks(self, node: Node) -> int:
        """512-byte blocks a file occupies: its bytes still from the bundle, plus what its
        data file holds (written ranges, reservations); a sparse file reports its holes
        as free, as a local file system does."""
        if node.kind != FILE:
            return 0
        with self.lock:
            base = min(node.base_limit, node.size) if node.origin is not None else 0
            staged = self.data.allocated(node.ino) if node.staged else 0
        whole = -(-node.size // 4096) * 4096  # base bytes a staged range covers count once
        return (min(base + staged, max(whole, staged)) + 511) // 512

    def changed_span(self, ino: int) -> tuple[int, int] | None:
        with self.lock:
            return self.data.extents.span(ino)

    def fsync(self, ino: int | None = None) -> None:
        """Make a file's staged data and every committed change durable. Holds the lock
        only to find the file: the syncs themselves may take a while."""
        with self.lock:
            node = self.nodes.cached(ino) if ino is not None else None
            fd = self.data.existing_fd(node.ino) if node is not None and node.staged else None
        if fd is not None:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self.data.sync_names()
        self.db.sync_log()

    def space(self) -> os.statvfs_result:
        return self.data.space()
