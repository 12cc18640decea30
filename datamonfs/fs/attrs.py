"""Entries to stat attributes, as uploaded: sizes, modes, mtimes, symlinks."""

from __future__ import annotations

import stat

import pyfuse3

from ..core.model import DIR, FILE, LINK, Entry

# A bundle never changes: the kernel may keep names and attributes as long as it likes.
TIMEOUT = 24 * 3600.0
BLKSIZE = 1 << 20  # preferred I/O size: tools like cat then read in large pieces

_TYPE = {FILE: stat.S_IFREG, DIR: stat.S_IFDIR, LINK: stat.S_IFLNK}


class AttrMaker:
    """Builds EntryAttributes owned by the user the mount was made for."""

    def __init__(self, uid: int, gid: int):
        self.uid = uid
        self.gid = gid

    def make(self, ino: int, kind: str, mode: int, size: int, mtime: int, uid: int | None = None,
             gid: int | None = None, subdirs: int | None = None) -> pyfuse3.EntryAttributes:
        """Attributes of an entry; owned by the mount's user unless `uid`/`gid` say else.
        A directory links itself and its `subdirs`; not counted yet (None), it comes with
        no attribute timeout, so that a stat asks again rather than the kernel keeping a
        guess (docs/ARCHITECTURE.md, "Directory link counts")."""
        a = pyfuse3.EntryAttributes()
        a.st_ino = ino
        a.generation = 0
        a.entry_timeout = TIMEOUT
        a.attr_timeout = TIMEOUT
        a.st_mode = _TYPE[kind] | mode
        a.st_nlink = 1
        if kind == DIR:
            a.st_nlink = 2 + (subdirs or 0)
            if subdirs is None:
                a.attr_timeout = 0
        a.st_uid = self.uid if uid is None else uid
        a.st_gid = self.gid if gid is None else gid
        a.st_rdev = 0
        a.st_size = size
        a.st_blksize = BLKSIZE
        a.st_blocks = (size + 511) // 512 if kind == FILE else 0
        a.st_atime_ns = a.st_ctime_ns = a.st_mtime_ns = mtime
        return a

    def entry(self, ino: int, e: Entry, subdirs: int | None = None) -> pyfuse3.EntryAttributes:
        # A directory's Entry.size counts the files below it; stat shows 0 like most file systems.
        return self.make(ino, e.kind, e.mode, 0 if e.kind == DIR else e.size, e.mtime,
                         subdirs=subdirs)
