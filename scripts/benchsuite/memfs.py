#!/usr/bin/env python3
"""The FUSE limit: a minimal read-only pyfuse3 file system serving files from memory.

    memfs.py SOURCE MOUNTPOINT      (runs in the foreground until unmounted)

It reads every file under SOURCE into memory, then mounts them at MOUNTPOINT the way a
datamonfs mount worker mounts a bundle: the same mount options, kernel read-ahead,
entry and attribute timeouts, st_blksize, keep_cache on open, readdirplus, pyfuse3 on
trio with the same task counts. What it does per request is a dictionary lookup or a
slice of bytes in memory, so a figure measured through it is what FUSE and pyfuse3
themselves cost on this kernel; the read scenario measures it beside datamonfs, and the
report sets the daemon's figures against it.
"""

from __future__ import annotations

import errno
import os
import stat
import sys

import pyfuse3
import trio

from datamonfs.daemon.mount_worker import READ_AHEAD_KB
from datamonfs.fs.attrs import BLKSIZE, TIMEOUT
from datamonfs.fs.mountinfo import after_init, set_read_ahead
from datamonfs.fs.operations import fuse_options


class Node:
    __slots__ = ("attr", "data", "names", "children")

    def __init__(self, attr: pyfuse3.EntryAttributes, data: bytes | None):
        self.attr = attr
        self.data = data  # a file's bytes; None for a directory
        self.names: list[bytes] = []  # a directory's entries, sorted
        self.children: dict[bytes, int] = {}  # name -> inode


class MemoryFS(pyfuse3.Operations):
    supports_dot_lookup = True

    def __init__(self, source: str):
        super().__init__()
        self.nodes: dict[int, Node] = {}
        self._load(source, pyfuse3.ROOT_INODE)

    def _attr(self, ino: int, st: os.stat_result) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = ino
        a.entry_timeout = a.attr_timeout = TIMEOUT
        a.st_mode = st.st_mode
        a.st_nlink = st.st_nlink
        a.st_uid, a.st_gid = os.getuid(), os.getgid()
        a.st_size = st.st_size
        a.st_blksize = BLKSIZE
        a.st_blocks = (st.st_size + 511) // 512
        a.st_atime_ns = a.st_ctime_ns = a.st_mtime_ns = st.st_mtime_ns
        return a

    def _load(self, path: str, ino: int) -> None:
        """Directories and regular files under path (anything else is left out)."""
        node = self.nodes[ino] = Node(self._attr(ino, os.lstat(path)), None)
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            st = e.stat(follow_symlinks=False)
            if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
                continue
            child = len(self.nodes) + pyfuse3.ROOT_INODE
            name = os.fsencode(e.name)
            node.names.append(name)
            node.children[name] = child
            if stat.S_ISDIR(st.st_mode):
                self._load(e.path, child)
            else:
                with open(e.path, "rb") as f:
                    self.nodes[child] = Node(self._attr(child, st), f.read())

    def _node(self, ino: int) -> Node:
        try:
            return self.nodes[ino]
        except KeyError:
            raise pyfuse3.FUSEError(errno.ENOENT) from None

    async def lookup(self, parent_inode, name, ctx=None):
        parent = self._node(parent_inode)
        if name == b".":
            return parent.attr
        ino = parent.children.get(name)
        if ino is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self.nodes[ino].attr

    async def getattr(self, inode, ctx=None):
        return self._node(inode).attr

    async def opendir(self, inode, ctx):
        self._node(inode)
        return inode

    async def readdir(self, fh, start_id, token):
        node = self.nodes[fh]
        for i in range(start_id, len(node.names)):
            name = node.names[i]
            if not pyfuse3.readdir_reply(token, name, self.nodes[node.children[name]].attr,
                                         i + 1):
                return

    async def releasedir(self, fh):
        pass

    async def open(self, inode, flags, ctx):
        node = self._node(inode)
        if node.data is None:
            raise pyfuse3.FUSEError(errno.EISDIR)
        if flags & os.O_ACCMODE != os.O_RDONLY:
            raise pyfuse3.FUSEError(errno.EROFS)
        return pyfuse3.FileInfo(fh=inode, keep_cache=True)

    async def read(self, fh, off, size):
        return memoryview(self.nodes[fh].data)[off:off + size]

    async def release(self, fh):
        pass

    async def forget(self, inode_list):
        pass


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    source, mountpoint = sys.argv[1:]
    fs = MemoryFS(source)
    # datamonfs' options, but not its type: nothing may take this mount for one of ours
    options = fuse_options("memfs", "ro") - {"subtype=datamonfs"} | {"subtype=memfs"}
    pyfuse3.init(fs, mountpoint, options)

    async def serve() -> None:
        async with trio.open_nursery() as nursery:
            if os.geteuid() == 0:  # as the worker does: once the kernel has INIT's answer
                async def tune() -> None:
                    await after_init(mountpoint)
                    set_read_ahead(mountpoint, READ_AHEAD_KB)
                nursery.start_soon(tune)
            await pyfuse3.main(2, 64)  # min_tasks, max_tasks: as mount_worker.py
            nursery.cancel_scope.cancel()

    try:
        trio.run(serve)
    finally:
        pyfuse3.close(unmount=False)  # ended by fusermount3 -u, which already unmounted


if __name__ == "__main__":
    main()
