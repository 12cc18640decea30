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
from typing import AsyncIterator, Callable

import pyfuse3
import trio

from ..core.model import DIR, LINK
from .overlay import Node, Overlay
from .base_tree import WouldBlock
from .operations import FileSystem, HandleTable, fuse_options, guarded

log = logging.getLogger(__name__)

# Only this mount changes its files, and it answers every change with fresh
# attributes; a short timeout still bounds what a missed case could show.
TIMEOUT = 5.0
READDIR_BATCH = 256


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
    def __init__(self, overlay: Overlay, uid: int, gid: int, threads: int = 16):
        super().__init__(uid, gid, ("writes", "bytes_written"))
        self.ov = overlay
        self.limiter = trio.CapacityLimiter(threads)
        self.gate = WriteGate()
        self._dirs: HandleTable[_DirHandle] = HandleTable()

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
        a = self.attrs.make(node.ino, node.kind, node.mode, node.size, node.mtime)
        a.st_ctime_ns = node.ctime
        a.entry_timeout = a.attr_timeout = TIMEOUT
        a.st_nlink = 1 if node.nlink else 0
        return a

    # -- names ---------------------------------------------------------------

    @guarded
    async def lookup(self, parent_inode, name, ctx=None):
        self.stats["lookups"] += 1
        if name in (b".", b".."):
            node = await self._quick(self.ov.get, parent_inode)
            if name == b"..":
                node = await self._quick(self.ov.get, node.parent)
            self.ov.count_lookup(node.ino)
            return self._attr(node)
        return self._attr(await self._quick(self.ov.lookup, parent_inode, name))

    @guarded
    async def getattr(self, inode, ctx=None):
        return self._attr(await self._quick(self.ov.get, inode))

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
            return self._attr(await self._quick(self.ov.mkdir, parent_inode, name, mode))

    @guarded
    async def mknod(self, parent_inode, name, mode, rdev, ctx):
        if not stat.S_ISREG(mode):
            raise pyfuse3.FUSEError(errno.EPERM)  # a bundle holds files, directories, symlinks
        async with self.gate.change():
            return self._attr(await self._quick(self.ov.create, parent_inode, name, mode))

    @guarded
    async def symlink(self, parent_inode, name, target, ctx):
        async with self.gate.change():
            return self._attr(await self._quick(self.ov.symlink, parent_inode, name, target))

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
        raise pyfuse3.FUSEError(errno.EPERM)  # a bundle has no hard links

    @guarded
    async def setattr(self, inode, attr, fields, fh, ctx):
        if (fields.update_uid and attr.st_uid != self.attrs.uid) or (
                fields.update_gid and attr.st_gid != self.attrs.gid):
            raise pyfuse3.FUSEError(errno.EPERM)  # owners are the mount's user
        mode = stat.S_IMODE(attr.st_mode) if fields.update_mode else None
        size = attr.st_size if fields.update_size else None
        mtime = attr.st_mtime_ns if fields.update_mtime else None
        if mode is None and size is None and mtime is None:
            return self._attr(await self._quick(self.ov.get, inode))
        async with self.gate.change():
            return self._attr(await self._quick(self.ov.setattr, inode, mode, size, mtime))

    # -- content ---------------------------------------------------------------

    @guarded
    async def open(self, inode, flags, ctx):
        truncate = bool(flags & os.O_TRUNC) and flags & os.O_ACCMODE != os.O_RDONLY
        if truncate:
            async with self.gate.change():
                node = await self._quick(self.ov.open, inode, True)
        else:
            node = await self._quick(self.ov.open, inode, False)
        return pyfuse3.FileInfo(fh=self.files.add(node.ino))

    @guarded
    async def create(self, parent_inode, name, mode, flags, ctx):
        async with self.gate.change():
            node = await self._quick(self.ov.create, parent_inode, name, mode)
        await self._quick(self.ov.open, node.ino, False)
        return pyfuse3.FileInfo(fh=self.files.add(node.ino)), self._attr(node)

    async def _read_file(self, ino: int, off: int, size: int):
        return await self._run(self.ov.read, ino, off, size)

    @guarded
    async def write(self, fh, off, buf):
        ino = self.files.get(fh)
        async with self.gate.change():
            n = await self._quick(self.ov.write, ino, off, bytes(buf))
        self.stats["writes"] += 1
        self.stats["bytes_written"] += n
        return n

    async def flush(self, fh):
        pass

    async def _release_file(self, ino: int) -> None:
        await self._quick(self.ov.release, ino)

    @guarded
    async def fsync(self, fh, datasync):
        await self._run(self.ov.fsync, self.files.get(fh))

    @guarded
    async def fsyncdir(self, fh, datasync):
        await self._run(self.ov.fsync, None)

    # -- extended attributes ---------------------------------------------------------
    # None: the kernel asks for security.capability before every write and chown, a
    # round trip each (a fifth of an untar's requests). ENOSYS makes it stop asking.

    async def getxattr(self, inode, name, ctx):
        raise pyfuse3.FUSEError(errno.ENOSYS)

    async def listxattr(self, inode, ctx):
        raise pyfuse3.FUSEError(errno.ENOSYS)

    async def setxattr(self, inode, name, value, ctx):
        raise pyfuse3.FUSEError(errno.ENOSYS)

    async def removexattr(self, inode, name, ctx):
        raise pyfuse3.FUSEError(errno.ENOSYS)


def mount_options(fs: WritableFS) -> set[str]:
    info = fs.ov.info
    return fuse_options(f"datamonfs:{info.repo}:{info.branch}")


__all__ = ["WritableFS", "WriteGate", "mount_options"]
