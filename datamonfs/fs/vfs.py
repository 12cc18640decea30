"""What both file systems (read-only and writable) share below the FUSE layer."""

from __future__ import annotations

import errno

ROOT = 1  # the root directory's inode number, as FUSE fixes it


class FsError(Exception):
    """A file system error for the FUSE layer: an errno and, for the log, why."""

    def __init__(self, err: int, message: str = ""):
        super().__init__(message or errno.errorcode.get(err, str(err)))
        self.errno = err
