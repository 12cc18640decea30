"""A writable mount: pyfuse3 Operations over an Overlay (fs/overlay.py).

Every overlay call is blocking (SQLite, data files, base content from the block
cache) and runs in a worker thread. Changes pass a write gate: a commit closes
it, waits for the changes in flight, and runs alone; reads go on meanwhile.
Unexpected errors become EIO: pyfuse3 ends the session on anything that is not
a FUSEError.
"""

from __future__ import annotations

import errno
import functools
import itertools
import logging
import os
import stat
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator, Callable

import pyfuse3
import trio

from ..core.model import DIR, FILE, LINK
from ..errors import DatamonError, StoreUnavailable
from .attrs import AttrMaker
from .failures import RecentFailures
from .overlay import Node, Overlay
from .base_tree import WouldBlock
from .vfs import ROOT, FsError

log = logging.getLogger(__name__)

# Only this mount changes its files, and it answers every change with fresh
# attributes; a short timeout still bounds what a missed case could show.
TIMEOUT = 5.0
READDIR_BATCH = 256


def _guarded(fn):
    @functools.wraps(fn)
    async def wrapper(self, *args):
        try:
            return await fn(self, *args)
        except pyfuse3.FUSEError:
            raise
        except FsError as e:
            if e.errno in (errno.EIO, errno.ENOSPC):
                log.warning("%s: %s", fn.__name__, e)
            raise pyfuse3.FUSEError(e.errno) from None
        except DatamonError as e:  # store down, corrupt data: this request fails, the mount lives
            log.error("%s failed: %s", fn.__name__, e)
            self.stats["errors"] += 1
            raise pyfuse3.FUSEError(errno.EIO) from None
        except OSError as e:
            log.error("%s failed: %s", fn.__name__, e)
            raise pyfuse3.FUSEError(e.errno or errno.EIO) from None
        except Exception:
            log.exception("%s failed unexpectedly", fn.__name__)
            self.stats["errors"] += 1
            raise pyfuse3.FUSEError(errno.EIO) from None
    return wrapper


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


class WritableFS(pyfuse3.Operations):
    supports_dot_lookup = True

    def __init__(self, overlay: Overlay, uid: int, gid: int, ref: str = "",
                 threads: int = 16):
        super().__init__()
        self.ov = overlay
        self.attrs = AttrMaker(uid, gid)
        self.uid, self.gid = uid, gid
        self.ref = ref
        self.limiter = trio.CapacityLimiter(threads)
        self.gate = WriteGate()
        self._files: dict[int, int] = {}  # fh -> inode
        self.failures = RecentFailures()
        self._dirs: dict[int, _DirHandle] = {}
        self._fh = itertools.count(1)
        self.stats = {"lookups": 0, "reads": 0, "bytes_read": 0, "writes": 0,
                      "bytes_written": 0, "errors": 0}

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

    @_guarded
    async def lookup(self, parent_inode, name, ctx=None):
        self.stats["lookups"] += 1
        if name in (b".", b".."):
            node = await self._quick(self.ov.get, parent_inode)
            if name == b"..":
                node = await self._quick(self.ov.get, node.parent)
            self.ov.count_lookup(node.ino)
            return self._attr(node)
        return self._attr(await self._quick(self.ov.lookup, parent_inode, name))

    @_guarded
    async def getattr(self, inode, ctx=None):
        return self._attr(await self._quick(self.ov.get, inode))

    async def forget(self, inode_list):
        for ino, n in inode_list:
            try:
                self.ov.forget(ino, n)
            except Exception:
                log.exception("forget of inode %d failed", ino)

    @_guarded
    async def readlink(self, inode, ctx):
        node = await self._quick(self.ov.get, inode)
        if node.kind != LINK:
            raise pyfuse3.FUSEError(errno.EINVAL)
        return os.fsencode(node.target)

    @_guarded
    async def opendir(self, inode, ctx):
        node = await self._quick(self.ov.get, inode)
        if node.kind != DIR:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        fh = next(self._fh)
        self._dirs[fh] = _DirHandle(inode, {})
        return fh

    @_guarded
    async def readdir(self, fh, start_id, token):
        # Entries change between calls, so an offset names the entry it follows, not a
        # position: the listing resumes after that name.
        h = self._dirs.get(fh)
        if h is None:
            raise pyfuse3.FUSEError(errno.EBADF)
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
        self._dirs.pop(fh, None)

    @_guarded
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

    @_guarded
    async def mkdir(self, parent_inode, name, mode, ctx):
        async with self.gate.change():
            return self._attr(await self._quick(self.ov.mkdir, parent_inode, name, mode))

    @_guarded
    async def mknod(self, parent_inode, name, mode, rdev, ctx):
        if not stat.S_ISREG(mode):
            raise pyfuse3.FUSEError(errno.EPERM)  # a bundle holds files, directories, symlinks
        async with self.gate.change():
            return self._attr(await self._quick(self.ov.create, parent_inode, name, mode))

    @_guarded
    async def symlink(self, parent_inode, name, target, ctx):
        async with self.gate.change():
            return self._attr(await self._quick(self.ov.symlink, parent_inode, name, target))

    @_guarded
    async def unlink(self, parent_inode, name, ctx):
        async with self.gate.change():
            await self._quick(self.ov.unlink, parent_inode, name)

    @_guarded
    async def rmdir(self, parent_inode, name, ctx):
        async with self.gate.change():
            await self._quick(self.ov.rmdir, parent_inode, name)

    @_guarded
    async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx):
        async with self.gate.change():
            await self._quick(self.ov.rename, parent_inode_old, name_old, parent_inode_new,
                            name_new, flags)

    @_guarded
    async def link(self, inode, new_parent_inode, new_name, ctx):
        raise pyfuse3.FUSEError(errno.EPERM)  # a bundle has no hard links

    @_guarded
    async def setattr(self, inode, attr, fields, fh, ctx):
        if (fields.update_uid and attr.st_uid != self.uid) or (
                fields.update_gid and attr.st_gid != self.gid):
            raise pyfuse3.FUSEError(errno.EPERM)  # owners are the mount's user
        mode = stat.S_IMODE(attr.st_mode) if fields.update_mode else None
        size = attr.st_size if fields.update_size else None
        mtime = attr.st_mtime_ns if fields.update_mtime else None
        if mode is None and size is None and mtime is None:
            return self._attr(await self._quick(self.ov.get, inode))
        async with self.gate.change():
            return self._attr(await self._quick(self.ov.setattr, inode, mode, size, mtime))

    # -- content ---------------------------------------------------------------

    @_guarded
    async def open(self, inode, flags, ctx):
        truncate = bool(flags & os.O_TRUNC) and flags & os.O_ACCMODE != os.O_RDONLY
        if truncate:
            async with self.gate.change():
                node = await self._quick(self.ov.open, inode, True)
        else:
            node = await self._quick(self.ov.open, inode, False)
        fh = next(self._fh)
        self._files[fh] = node.ino
        return pyfuse3.FileInfo(fh=fh)

    @_guarded
    async def create(self, parent_inode, name, mode, flags, ctx):
        async with self.gate.change():
            node = await self._quick(self.ov.create, parent_inode, name, mode)
        await self._quick(self.ov.open, node.ino, False)
        fh = next(self._fh)
        self._files[fh] = node.ino
        return pyfuse3.FileInfo(fh=fh), self._attr(node)

    def _ino(self, fh: int) -> int:
        ino = self._files.get(fh)
        if ino is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        return ino

    @_guarded
    async def read(self, fh, off, size):
        ino = self._ino(fh)
        self.failures.check(fh)
        try:
            data = await self._run(self.ov.read, ino, off, size)
        except StoreUnavailable:
            self.failures.failed(fh)
            raise
        self.stats["reads"] += 1
        self.stats["bytes_read"] += len(data)
        return data

    @_guarded
    async def write(self, fh, off, buf):
        ino = self._ino(fh)
        async with self.gate.change():
            n = await self._quick(self.ov.write, ino, off, bytes(buf))
        self.stats["writes"] += 1
        self.stats["bytes_written"] += n
        return n

    async def flush(self, fh):
        pass

    @_guarded
    async def release(self, fh):
        self.failures.forget(fh)
        ino = self._files.pop(fh, None)
        if ino is not None:
            await self._quick(self.ov.release, ino)

    @_guarded
    async def fsync(self, fh, datasync):
        await self._run(self.ov.fsync, self._ino(fh))

    @_guarded
    async def fsyncdir(self, fh, datasync):
        await self._run(self.ov.fsync, None)

    def open_files(self) -> int:
        return len(self._files)

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
    opts = {"nosuid", "nodev", "default_permissions", "subtype=datamonfs",
            f"fsname=datamonfs:{info.repo}:{info.branch}"}
    if os.geteuid() == 0:
        opts.add("allow_other")
    return opts


__all__ = ["FILE", "ROOT", "WritableFS", "WriteGate", "mount_options"]
