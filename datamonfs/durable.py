"""sync_directory: the one way names are made durable, for the local store and the overlay.

A rename, link, create or mkdir survives a crash of the machine once the directory that
holds the new name is fsynced. POSIX asks for it; ext4 and XFS happen to commit such a
change before a later fsync of anything, other file systems need not.
"""

from __future__ import annotations

import errno
import os


def sync_directory(path: str) -> None:
    """fsync the directory `path`. A file system that cannot sync a directory (EINVAL,
    ENOSYS, ENOTSUP) or a directory this user may write but not read leaves nothing to do."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except PermissionError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)
