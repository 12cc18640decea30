"""File content: where a FUSE write is staged, and how a read puts a file together.

The bytes written are kept by staged.StagedData: a small file's in its extent rows
(below INLINE_MAX), others in `data/INO`, a sparse file at their own offsets. A
write past INLINE_MAX, or a fallocate, moves a file's bytes from its rows to its
data file first (`Content._to_file`). A read takes written ranges from there, and
the rest from the file's base content below its `base_limit`, else zeros. So
writing 4 bytes into a 10 GiB base file stages 4 bytes, and a truncate only moves
numbers.

`Content.write` (a FUSE write) writes the bytes to the data file first, then
records the extent that shows them in one transaction, so a crash leaves at worst
written bytes nobody points at (and a data file no row names, deleted when the
overlay is opened again).

`Content.fallocate` (fallocate(2) on the mount): allocating reserves the range in
the data file (so later writes there do not run out of space) and may extend the
file; punching a hole or zeroing a range punches the data file and records the
range as written, so it reads as zeros whatever the base had there.
"""

from __future__ import annotations

import errno
import os
import threading

from ...core.model import DIR, FILE
from ..vfs import FsError
from .db import OverlayDB
from .nodes import Node, NodeCache, now
from .staged import FALLOCATE_MODES, INLINE_MAX, KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE, StagedData


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
            if not data:
                return 0
            if end <= INLINE_MAX and not (node.staged and self.data.extents.in_file(ino)):
                self.data.check_space(len(data), in_rows=True)
                self._record(node, offset, end, data)
                return len(data)
            self.data.check_space(len(data))
            self._to_file(node)
            fd = self.data.dup_fd(ino)
            self.data.writing(len(data))
        try:
            n = os.pwrite(fd, data, offset)
        except OSError as e:
            raise FsError(e.errno or errno.EIO, f"writing staged data: {e}") from None
        finally:
            os.close(fd)
            self.data.written(len(data))
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
