"""Staged bytes: the data files under `data/` and the bytes kept in extent rows.

`data/INO` holds the bytes written to inode INO at their own offsets (a sparse
file); the `extents` rows say which ranges of it are real (disjoint, never
adjacent; extents.Extents). A small file's bytes (all written below INLINE_MAX)
are kept in its extent rows instead (`record`), so that creating one costs no
file of its own: no open, no fsync and no unlink of a data file, only rows of the
group commit (db.py). Data files are deleted only after the rows that name them
(`drop`, once the change that deleted them is committed).

`StagedData` is called with the overlay's lock held, except `assemble`, which reads
base content (perhaps from the store) without it. content.py puts it to use.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from typing import Callable, Protocol

from ...core.model import Entry
from ...core.trees import TreeReader
from ...durable import sync_directory
from ...lru import LRU
from ..vfs import FsError
from .db import Tx
from .extents import Extents

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
        self._files: set[int] = set()  # inodes with a data file (small files have none)
        self._readers: LRU[int, tuple[Entry, RangeReader]] = LRU(MAX_READERS)
        self._readers_lock = threading.Lock()
        self.nowait = True  # the file system of data/ reads with RWF_NOWAIT
        # Bytes of writes that passed check_space and are not on disk yet: writes check
        # under the overlay's lock but write after it, so two at once must not both be
        # granted the same free space (they took the database's reserve between them).
        self._unwritten = 0
        self._unwritten_lock = threading.Lock()

    # -- writing -----------------------------------------------------------------

    def check_space(self, n: int, in_rows: bool = False) -> None:
        """ENOSPC before the disk is full: the database must always find room for the
        change that records a write, or the one that deletes a file to free space. Bytes
        kept in rows are such a change too (they reach the WAL with the group that
        records them, not before): they may use the first half of that reserve."""
        st = os.statvfs(self.dir)
        reserve = min(max(st.f_blocks * st.f_frsize // 50, RESERVE_MIN), RESERVE_MAX)
        free = st.f_bavail * st.f_frsize - self._unwritten
        if free - n < (reserve // 2 if in_rows else reserve):
            raise FsError(errno.ENOSPC, "the overlay's file system is (nearly) full")

    def writing(self, n: int) -> None:
        """`n` bytes that passed check_space are about to be written: count them as used
        until `written(n)`."""
        with self._unwritten_lock:
            self._unwritten += n

    def written(self, n: int) -> None:
        with self._unwritten_lock:
            self._unwritten -= n

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
        blocks = 0
        if ino in self._files:
            fd = self._fds.get(ino)
            try:
                blocks = (os.fstat(fd) if fd is not None else
                          os.stat(os.path.join(self.dir, str(ino)))).st_blocks
            except FileNotFoundError:
                pass
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
        if ino not in self._files:
            return None
        try:
            return os.open(os.path.join(self.dir, str(ino)), os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return None

    def sync_names(self) -> None:
        """Make the names of new data files durable."""
        sync_directory(self.dir)

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
            self._files.add(ino)
        return fd

    def forget(self, ino: int) -> None:
        """Close what is kept open for a file the kernel no longer knows."""
        self._fds.pop(ino)
        with self._readers_lock:
            self._readers.pop(ino)

    def drop(self, ino: int) -> None:
        """Delete a file's staged bytes (after the rows naming them are gone)."""
        self.forget(ino)
        if ino in self._files:
            self._files.discard(ino)
            try:
                os.unlink(os.path.join(self.dir, str(ino)))
            except FileNotFoundError:
                pass

    def keep_only(self, staged: set[int]) -> None:
        """When opened (after a crash, too): delete data files no row names; note the rest."""
        for name in os.listdir(self.dir):
            if name.isdigit() and int(name) in staged:
                self._files.add(int(name))
                continue
            try:
                os.unlink(os.path.join(self.dir, name))
            except FileNotFoundError:
                pass

    def close(self) -> None:
        self._fds.clear()
