"""A writable mount: pyfuse3 Operations over an Overlay (fs/overlay/).

Every overlay call is blocking (SQLite, data files, base content from the block
cache) and runs in a worker thread. Changes pass a write gate: a commit closes
it, waits for the changes in flight, and runs alone; reads go on meanwhile.
Errors become errnos in the base class's guard (fs/operations.py).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import AsyncIterator, Callable

import pyfuse3
import trio

from ..core.model import DIR, LINK
from .overlay import Node, Overlay
from .base_tree import WouldBlock
from . import fuse_extra
from .operations import FileSystem, HandleTable, fuse_options, guarded

log = logging.getLogger(__name__)

# Only this mount changes its files, and it answers every change with fresh
# attributes; a short timeout still bounds what a missed case could show.
TIMEOUT = 5.0
READDIR_BATCH = 256
THREADED_WRITE = 256 << 10  # bytes from which a write goes to a thread


class WriteGate:
    """Changes share the gate; a commit takes it alone, after the changes in flight."""

    def __init__(self) -> None:
        self._active = 0
        self._closed: trio.Event | None = None
        self._drained: trio.Event | None = None

    @asynccontextmanager
    async def change(self) -> AsyncIterator[None]:
        while self._closed is not None:
            await self._closed.wait()
        self._active += 1
        try:
            yield
        finally:
            self._active -= 1
            if self._active == 0 and self._drained is not None:
                self._drained.set()

    @asynccontextmanager
    async def alone(self) -> AsyncIterator[None]:
        while self._closed is not None:
            await self._closed.wait()
        self._closed = closed = trio.Event()
        try:
            while self._active:
                self._drained = trio.Event()
                await self._drained.wait()
            self._drained = None
            yield
        finally:
            self._closed = None
            closed.set()

    @property
    def busy(self) -> bool:
        return self._closed is not None


@dataclass
class _DirHandle:
    ino: int
    names: dict[int, bytes]  # offset handed to the kernel -> name of that entry
    next_off: int = 1


class WritableFS(FileSystem[int]):  # an open file handle holds its inode
    # The kernel keeps writes in its page cache and sends them in the background, whole
    # pages at a time: small random writes cost the writer a page-cache write instead of
    # a round trip here (docs/ARCHITECTURE.md, "Decision — the kernel's writeback cache").
    enable_writeback_cache = True

    def __init__(self, overlay: Overlay, uid: int, gid: int, threads: int = 16):
        super().__init__(uid, gid, ("writes", "bytes_written"))
        self.ov = overlay
        self.limiter = trio.CapacityLimiter(threads)
        self.gate = WriteGate()
        self._dirs: HandleTable[_DirHandle] = HandleTable()
        self.mountpoint: str | None = None  # once init_session mounted it (None: in-process)

    async def _run(self, fn: Callable, *args):
        """In a worker thread: anything that may wait for the store or the disk."""
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    async def _quick(self, fn: Callable, *args):
        """On the event loop when memory and the overlay database suffice (a thread
        hand-off costs more than most metadata operations), else in a thread. What may
        wait for the store runs before any change, so a retry in a thread is safe."""
        try:
            with self.ov.base.memory_only():
                return fn(*args)
        except WouldBlock as miss:
            return await self._run(self._fetching, fn, args, miss)

    def _fetching(self, fn: Callable, args: tuple, miss: WouldBlock):
        """Fetch base pages without holding the overlay's lock, then retry from memory."""
        while True:
            self.ov.base.load(miss)
            try:
                with self.ov.base.memory_only():
                    return fn(*args)
            except WouldBlock as again:
                miss = again

    def _attr(self, node: Node) -> pyfuse3.EntryAttributes:
        """What stat shows, from memory. A directory whose subdirectories were not counted
        yet (see `_counted`) comes with no attribute timeout, so that a stat asks again."""
        uid, gid = self.ov.owner_of(node)
        subdirs = self.ov.subdirs(node, known_only=True) if node.kind == DIR else None
        a = self.attrs.make(node.ino, node.kind, node.mode, node.size, node.mtime, uid, gid,
                            subdirs)
        a.st_ctime_ns = node.ctime
        a.st_atime_ns = node.mtime if node.atime is None else node.atime
        a.entry_timeout = TIMEOUT
        if node.kind != DIR or subdirs is not None:
            a.attr_timeout = TIMEOUT
        if node.kind != DIR:
            a.st_nlink = node.nlink
            a.st_blocks = self.ov.blocks(node)
        return a

    async def _counted(self, node: Node) -> pyfuse3.EntryAttributes:
        """`_attr` with a directory's subdirectories counted (reading its base pages, in a
        thread if they are not in memory; counting changes nothing, so a retry is safe)."""
        if node.kind == DIR:
            await self._quick(self.ov.subdirs, node)
        return self._attr(node)

    # -- names ---------------------------------------------------------------

    @guarded
    async def lookup(self, parent_inode, name, ctx=None):
        self.stats["lookups"] += 1
        if name in (b".", b".."):
            node = await self._quick(self.ov.get, parent_inode)
            if name == b"..":
                node = await self._quick(self.ov.get, node.parent)
            self.ov.count_lookup(node.ino)
            return await self._counted(node)
        return await self._counted(await self._quick(self.ov.lookup, parent_inode, name))

    @guarded
    async def getattr(self, inode, ctx=None):
        return await self._counted(await self._quick(self.ov.get, inode))

    async def forget(self, inode_list):
        for ino, n in inode_list:
            try:
                self.ov.forget(ino, n)
            except Exception:
                log.exception("forget of inode %d failed", ino)

    @guarded
    async def readlink(self, inode, ctx):
        node = await self._quick(self.ov.get, inode)
        if node.kind != LINK:
            raise pyfuse3.FUSEError(errno.EINVAL)
        return os.fsencode(node.target)

    @guarded
    async def opendir(self, inode, ctx):
        node = await self._quick(self.ov.get, inode)
        if node.kind != DIR:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return self._dirs.add(_DirHandle(inode, {}))

    @guarded
    async def readdir(self, fh, start_id, token):
        # Entries change between calls, so an offset names the entry it follows, not a
        # position: the listing resumes after that name.
        h = self._dirs.get(fh)
        after = h.names.get(start_id) if start_id else None
        if start_id and after is None:
            raise pyfuse3.FUSEError(errno.EINVAL)  # an offset this handle never gave
        handed: dict[int, bytes] = {start_id: after} if start_id else {}
        try:
            while True:
                batch = await self._quick(self.ov.list_dir, h.ino, after, READDIR_BATCH)
                for name, node in batch:
                    off = h.next_off
                    h.next_off += 1
                    handed[off] = name
                    if not pyfuse3.readdir_reply(token, name, self._attr(node), off):
                        return
                    self.ov.count_lookup(node.ino)
                    after = name
                if len(batch) < READDIR_BATCH:
                    return
        finally:
            h.names = handed

    async def releasedir(self, fh):
        self._dirs.pop(fh)

    @guarded
    async def statfs(self, ctx):
        st = await self._run(self.ov.space)
        s = pyfuse3.StatvfsData()
        s.f_bsize = st.f_bsize
        s.f_frsize = st.f_frsize
        s.f_blocks = st.f_blocks
        s.f_bfree = st.f_bfree
        s.f_bavail = st.f_bavail
        s.f_files = st.f_files
        s.f_ffree = st.f_ffree
        s.f_favail = st.f_favail
        s.f_namemax = 255
        return s

    # -- changes to names ------------------------------------------------------

    @guarded
    async def mkdir(self, parent_inode, name, mode, ctx):
        async with self.gate.change():
            return self._attr(await self._quick(self.ov.mkdir, parent_inode, name, mode, ctx.uid,
                                                ctx.gid))

    @guarded
    async def mknod(self, parent_inode, name, mode, rdev, ctx):
        if not stat.S_ISREG(mode):
            raise pyfuse3.FUSEError(errno.EPERM)  # a bundle holds files, directories, symlinks
        async with self.gate.change():
            return self._attr(await self._quick(self.ov.create, parent_inode, name, mode,
                                                ctx.uid, ctx.gid))

    @guarded
    async def symlink(self, parent_inode, name, target, ctx):
        async with self.gate.change():
            return self._attr(await self._quick(self.ov.symlink, parent_inode, name, target,
                                                ctx.uid, ctx.gid))

    @guarded
    async def unlink(self, parent_inode, name, ctx):
        async with self.gate.change():
            await self._quick(self.ov.unlink, parent_inode, name)

    @guarded
    async def rmdir(self, parent_inode, name, ctx):
        async with self.gate.change():
            await self._quick(self.ov.rmdir, parent_inode, name)

    @guarded
    async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx):
        async with self.gate.change():
            await self._quick(self.ov.rename, parent_inode_old, name_old, parent_inode_new,
                              name_new, flags)

    @guarded
    async def link(self, inode, new_parent_inode, new_name, ctx):
        async with self.gate.change():
            return self._attr(await self._quick(self.ov.link, inode, new_parent_inode, new_name))

    @guarded
    async def setattr(self, inode, attr, fields, fh, ctx):
        # The kernel has checked the caller may (default_permissions): chown needs
        # CAP_CHOWN, a group change by the owner one of its groups, and so on.
        changes = {
            "mode": stat.S_IMODE(attr.st_mode) if fields.update_mode else None,
            "size": attr.st_size if fields.update_size else None,
            "mtime": attr.st_mtime_ns if fields.update_mtime else None,
            "atime": attr.st_atime_ns if fields.update_atime else None,
            "ctime": attr.st_ctime_ns if fields.update_ctime else None,
            "uid": attr.st_uid if fields.update_uid else None,
            "gid": attr.st_gid if fields.update_gid else None}
        if all(v is None for v in changes.values()):
            return await self._counted(await self._quick(self.ov.get, inode))
        async with self.gate.change():
            node = await self._quick(partial(self.ov.setattr, inode, **changes))
        return await self._counted(node)

    # -- content ---------------------------------------------------------------

    # keep_cache: every change to a file's bytes passes through this mount, that is through
    # the kernel's page cache, so what it cached stays true (also across a commit).

    @guarded
    async def open(self, inode, flags, ctx):
        truncate = bool(flags & os.O_TRUNC) and flags & os.O_ACCMODE != os.O_RDONLY
        if truncate:
            async with self.gate.change():
                node = await self._quick(self.ov.open, inode, True)
        else:
            node = await self._quick(self.ov.open, inode, False)
        return pyfuse3.FileInfo(fh=self.files.add(node.ino), keep_cache=True)

    @guarded
    async def create(self, parent_inode, name, mode, flags, ctx):
        async with self.gate.change():
            node = await self._quick(self.ov.create, parent_inode, name, mode, ctx.uid, ctx.gid)
        await self._quick(self.ov.open, node.ino, False)
        return pyfuse3.FileInfo(fh=self.files.add(node.ino), keep_cache=True), self._attr(node)

    async def _read_file(self, ino: int, off: int, size: int):
        # Staged bytes in the page cache are answered here; base content (the block cache,
        # the store) and staged bytes on disk only in a thread.
        data = self.ov.read(ino, off, size, nowait=True)
        return data if data is not None else await self._run(self.ov.read, ino, off, size)

    @guarded
    async def write(self, fh, off, buf):
        ino = self.files.get(fh)
        async with self.gate.change():
            if len(buf) >= THREADED_WRITE:  # copying it takes longer than a thread hand-off
                n = await self._run(self.ov.write, ino, off, buf)
            else:
                n = await self._quick(self.ov.write, ino, off, buf)
        self.stats["writes"] += 1
        self.stats["bytes_written"] += n
        return n

    @guarded
    async def flush(self, fh):
        # close(2) waits for this, after the kernel wrote the file's pages back: committing
        # the open group keeps the promise that what was closed survives SIGKILL. On the
        # event loop: a commit without fsync (synchronous=NORMAL) is a WAL append, and
        # nothing at all when no change is waiting.
        self.ov.flush()

    async def _release_file(self, ino: int) -> None:
        await self._quick(self.ov.release, ino)

    @guarded
    async def fsync(self, fh, datasync):
        ino = self.files.get(fh)
        await self._run(self.ov.fsync, ino)
        # What the kernel wrote back changed the file's blocks, which it does not count
        # itself (its writeback cache keeps size and times): have it ask again.
        await self._run(pyfuse3.invalidate_inode, ino, True)

    @guarded
    async def fsyncdir(self, fh, datasync):
        await self._run(self.ov.fsync, None)

    @guarded
    async def fallocate(self, inode, mode, offset, length):
        """Not a pyfuse3 handler: fs/fuse_extra.py routes FUSE_FALLOCATE here."""
        async with self.gate.change():
            await self._quick(self.ov.fallocate, inode, mode, offset, length)

    # -- extended attributes ---------------------------------------------------------
    # The kernel asks for security.capability before every write: names outside user.*
    # are answered here at once, without the overlay (or a thread).

    async def getxattr(self, inode, name, ctx):
        if not name.startswith(b"user."):
            raise pyfuse3.FUSEError(pyfuse3.ENOATTR)
        return await self._getxattr(inode, name)

    @guarded
    async def _getxattr(self, inode, name):
        for have, value in await self._quick(self.ov.xattrs, inode):
            if have.encode() == name:
                return value
        raise pyfuse3.FUSEError(pyfuse3.ENOATTR)

    @guarded
    async def listxattr(self, inode, ctx):
        return [name.encode() for name, _ in await self._quick(self.ov.xattrs, inode)]

    @guarded
    async def setxattr(self, inode, name, value, ctx):
        async with self.gate.change():
            await self._quick(self.ov.set_xattr, inode, name, value)

    @guarded
    async def removexattr(self, inode, name, ctx):
        async with self.gate.change():
            await self._quick(self.ov.set_xattr, inode, name, None)


def mount_options(fs: WritableFS) -> set[str]:
    info = fs.ov.info
    return fuse_options(f"datamonfs:{info.repo}:{info.branch}")


def init_session(fs: WritableFS, mountpoint: str) -> None:
    """pyfuse3.init for a writable mount, with the requests pyfuse3 leaves out (fallocate)."""
    pyfuse3.init(fs, mountpoint, mount_options(fs))
    fs.mountpoint = mountpoint
    fuse_extra.install(fs.fallocate)


__all__ = ["WritableFS", "WriteGate", "init_session", "mount_options"]
