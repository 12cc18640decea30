"""What the read-only and the writable file system share at the FUSE layer.

`FileSystem` is the base of both: the one guard every request passes (an exception
becomes an errno here and nowhere else), the table of open file handles, the
counters a worker reports, and reads that fail at once for a moment after the
store did not answer (fs/failures.py). pyfuse3 ends the whole session on any
exception that is not a FUSEError, so nothing else may leave a guarded handler.
"""

from __future__ import annotations

import errno
import functools
import itertools
import logging
import os
from typing import Generic, TypeVar

import pyfuse3

from ..errors import DatamonError, StoreUnavailable
from .attrs import AttrMaker
from .failures import RecentFailures
from .vfs import FsError

log = logging.getLogger(__name__)

T = TypeVar("T")


def _errno_of(request: str, e: Exception, stats: dict) -> int:
    """The errno a failed request answers with; logs it and counts it as the table says.

    Called inside the `except` block, so `log.exception` has the traceback."""
    if isinstance(e, FsError):  # the file system's own answer (ENOENT, EEXIST, ...)
        if e.errno in (errno.EIO, errno.ENOSPC):
            log.warning("%s: %s", request, e)
        return e.errno
    stats["errors"] += 1
    if isinstance(e, DatamonError):  # store down, corrupt data: this request fails, the mount lives
        log.error("%s failed: %s", request, e)
        return errno.EIO
    if isinstance(e, OSError):  # the overlay's disk, say: its own errno (ENOSPC, EDQUOT, ...)
        log.error("%s failed: %s", request, e)
        return e.errno or errno.EIO
    log.exception("%s failed unexpectedly", request)
    return errno.EIO


def guarded(fn):
    """A FUSE handler whose every failure reaches the kernel as an errno."""
    @functools.wraps(fn)
    async def wrapper(self: FileSystem, *args):
        try:
            return await fn(self, *args)
        except pyfuse3.FUSEError:
            raise
        except Exception as e:
            raise pyfuse3.FUSEError(_errno_of(fn.__name__, e, self.stats)) from None
    return wrapper


class HandleTable(Generic[T]):
    """What the kernel's handle numbers (fh) stand for."""

    def __init__(self) -> None:
        self._items: dict[int, T] = {}
        self._ids = itertools.count(1)

    def add(self, item: T) -> int:
        fh = next(self._ids)
        self._items[fh] = item
        return fh

    def get(self, fh: int) -> T:
        try:
            return self._items[fh]
        except KeyError:
            raise pyfuse3.FUSEError(errno.EBADF) from None

    def pop(self, fh: int) -> T | None:
        return self._items.pop(fh, None)

    def __len__(self) -> int:
        return len(self._items)


def fuse_options(fsname: str, *extra: str) -> set[str]:
    """Mount options of every datamonfs mount, named `fsname` in the mount table."""
    opts = {"nosuid", "nodev", "default_permissions", "subtype=datamonfs", f"fsname={fsname}",
            *extra}
    if os.geteuid() == 0:
        opts.add("allow_other")  # a per-host daemon mounts for other users and pods
    return opts


class FileSystem(pyfuse3.Operations, Generic[T]):
    """The base of ReadOnlyFS and WritableFS; T is what an open file handle holds.

    Subclasses decorate their handlers with `guarded`, and provide `_read_file`
    and `_release_file`."""

    supports_dot_lookup = True

    def __init__(self, uid: int, gid: int, counters: tuple[str, ...] = ()):
        super().__init__()
        self.attrs = AttrMaker(uid, gid)
        self.files: HandleTable[T] = HandleTable()
        self.failures = RecentFailures()
        self.stats = dict.fromkeys(("lookups", "reads", "bytes_read", *counters, "errors"), 0)

    async def _read_file(self, f: T, off: int, size: int):
        raise NotImplementedError

    async def _release_file(self, f: T) -> None:
        raise NotImplementedError

    @guarded
    async def read(self, fh, off, size):
        f = self.files.get(fh)
        self.failures.check(fh)
        try:
            data = await self._read_file(f, off, size)
        except StoreUnavailable:
            self.failures.failed(fh)
            raise
        self.stats["reads"] += 1
        self.stats["bytes_read"] += len(data)
        return data

    @guarded
    async def release(self, fh):
        self.failures.forget(fh)
        f = self.files.pop(fh)
        if f is not None:
            await self._release_file(f)

    def open_files(self) -> int:
        return len(self.files)
