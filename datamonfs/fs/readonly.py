"""A bundle as a read-only FUSE file system (pyfuse3 Operations).

Directories are read from the tree when first visited, one page at a time;
file bytes come through the block cache when read. Blocking store and cache
calls run in worker threads behind capacity limiters, never on the event loop.
Errors become errnos in the base class's guard (fs/operations.py).
"""

from __future__ import annotations

import errno
import functools
import logging
import os
from dataclasses import dataclass

import pyfuse3
import trio

from ..core import rules
from ..core.model import DIR, FILE, LINK, Bundle, Entry
from ..core.repository import Repository
from ..core.trees import BadEntry, claims_of
from ..cache.in_place import InPlaceReader
from ..errors import IntegrityError
from .content import ContentReader, OpenFile
from .inodes import ROOT, DirNode, InodeTable, child_ino, position
from .operations import FileSystem, fuse_options, guarded
from .pages import PageCache, PageReader

log = logging.getLogger(__name__)

XATTR_PREFIX = b"user.datamonfs."
# A walk (find, du, ls -R) visits a directory's subdirectories in order: while it is in
# one, the next few are read and parsed ahead, so their store reads and parsing overlap
# the walk instead of stalling it at each directory (see _walk_ahead).
WALK_AHEAD = 4


def _good(entry: Entry | BadEntry) -> Entry:
    if isinstance(entry, BadEntry):
        raise IntegrityError(entry.reason)
    return entry


def _read_only(fn):
    @functools.wraps(fn)
    async def wrapper(self, *args):
        raise pyfuse3.FUSEError(errno.EROFS)
    return wrapper


def _data_threads(chunk_reader) -> int:
    """Threads reading file bytes. Reads through the block cache wait on a remote store,
    so many overlap. A local store's chunks read in place cost only CPU (preadv, BLAKE3)
    and a local disk the kernel reads ahead: more threads than twice the cores then
    fight for the GIL (16 cold readers in parallel, 2 cores: 296 MB/s with 16 threads,
    541 with 4, 498 with 2, 471 with 8; one reader 616 -> 637)."""
    if isinstance(chunk_reader, InPlaceReader):
        return 2 * (os.cpu_count() or 1)
    return 16


@dataclass(frozen=True)
class MountInfo:
    ref: str
    uid: int
    gid: int


class ReadOnlyFS(FileSystem[OpenFile]):
    def __init__(self, repo: Repository, chunk_reader, bundle: Bundle, info: MountInfo,
                 file_reader_cls, meta_threads: int = 8, data_threads: int | None = None):
        super().__init__(info.uid, info.gid, ("readdirs", "opens"))
        self.repo = repo
        self.chunk_reader = chunk_reader
        self.file_reader_cls = file_reader_cls
        self.bundle = bundle
        self.info = info
        self.inodes = InodeTable(bundle.tree, (bundle.files, bundle.bytes))
        self.meta_limiter = trio.CapacityLimiter(meta_threads)
        self.data_limiter = trio.CapacityLimiter(data_threads or _data_threads(chunk_reader))
        self.pages = PageCache(PageReader(repo.trees, lenient=True), self.meta_limiter)
        self.content = ContentReader(self.data_limiter)
        self._xattrs = {
            XATTR_PREFIX + b"bundle": bundle.id.encode(),
            XATTR_PREFIX + b"repo": bundle.repo.encode(),
            XATTR_PREFIX + b"ref": info.ref.encode(),
        }

    # -- finding entries -----------------------------------------------------

    async def _layout(self, node: DirNode):
        if node.layout is None:
            node.layout = await self.pages.layout(node.tree, node.claims)
        return node.layout

    async def _entry(self, ino: int) -> tuple[DirNode, Entry]:
        """The entry with inode `ino` and the directory holding it."""
        held = self.inodes.holder(ino)
        if held is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        node, index = held
        layout = await self._layout(node)
        if index >= layout.total:
            raise pyfuse3.FUSEError(errno.ENOENT)
        i = layout.page_of(index)
        page = await self.pages.page(layout, i)
        return node, _good(page.entries[index - layout.starts[i]])

    async def _dir(self, ino: int) -> DirNode:
        node = self.inodes.dir(ino)
        if node is None:
            parent, entry = await self._entry(ino)
            if entry.kind != DIR:
                raise pyfuse3.FUSEError(errno.ENOTDIR)
            node = self.inodes.add_dir(ino, parent.ino, entry.tree, parent.depth,
                                       claims_of(entry))
            self._walk_ahead(parent, position(ino)[1] + 1)
        return node

    def _walk_ahead(self, parent: DirNode, index: int) -> None:
        """Load in the background the layouts of the next WALK_AHEAD subdirectories of
        `parent` from position `index` on that are not visited yet, as far as the page
        in memory holding `index` goes (nothing is loaded to look for them)."""
        layout = parent.layout
        if layout is None or index >= layout.total:
            return
        i = layout.page_of(index)
        page = self.pages.cached(layout, i)
        if page is None:
            return
        ahead = WALK_AHEAD
        start = layout.starts[i]
        for at in range(index - start, len(page.entries)):
            entry = page.entries[at]
            if entry.kind != DIR:
                continue
            visited = self.inodes.dir(child_ino(parent.slot, start + at))
            if visited is None or visited.layout is None:
                self.pages.prefetch_layout(entry.tree, claims_of(entry))
            ahead -= 1
            if not ahead:
                return

    async def _subdirs(self, node: DirNode) -> int:
        """A directory's subdirectories, counted over its pages once (its link count)."""
        if node.subdirs is None:
            layout = await self._layout(node)
            count = 0
            for i in range(len(layout.addrs)):
                count += sum(e.kind == DIR for e in (await self.pages.page(layout, i)).entries)
            node.subdirs = count
        return node.subdirs

    def _known_subdirs(self, ino: int) -> int | None:
        node = self.inodes.dir(ino)
        return node.subdirs if node is not None else None

    async def _attr(self, ino: int) -> pyfuse3.EntryAttributes:
        """Attributes with a directory's link count counted (see AttrMaker.make)."""
        if ino == ROOT:
            return self.attrs.make(ROOT, DIR, 0o755, 0, self.bundle.time,
                                   subdirs=await self._subdirs(await self._dir(ROOT)))
        _, entry = await self._entry(ino)
        subdirs = await self._subdirs(await self._dir(ino)) if entry.kind == DIR else None
        return self.attrs.entry(ino, entry, subdirs)

    # -- metadata ------------------------------------------------------------

    @guarded
    async def lookup(self, parent_inode, name, ctx=None):
        self.stats["lookups"] += 1
        node = await self._dir(parent_inode)
        if name == b".":
            return await self._attr(node.ino)
        if name == b"..":
            return await self._attr(node.parent)
        if len(name) > rules.MAX_NAME_BYTES:  # no entry can have it
            raise pyfuse3.FUSEError(errno.ENAMETOOLONG)
        text = os.fsdecode(name)
        layout = await self._layout(node)
        i = layout.page_for_name(text)
        if i < 0 or layout.total == 0:
            raise pyfuse3.FUSEError(errno.ENOENT)
        page = await self.pages.page(layout, i)
        at = page.find(text)
        if at is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        ino = child_ino(node.slot, layout.starts[i] + at)
        entry = _good(page.entries[at])
        if entry.kind == DIR:
            return await self._attr(ino)
        return self.attrs.entry(ino, entry)

    @guarded
    async def getattr(self, inode, ctx=None):
        return await self._attr(inode)

    @guarded
    async def readlink(self, inode, ctx):
        node, entry = await self._entry(inode)
        if entry.kind != LINK:
            raise pyfuse3.FUSEError(errno.EINVAL)
        problem = rules.link_problem(entry.target, node.depth)
        if problem:  # never hand the kernel a way out of the mount
            raise IntegrityError(f"refusing symlink {entry.name!r} -> {entry.target!r}: {problem}")
        return os.fsencode(entry.target)

    async def forget(self, inode_list):
        pass  # inode numbers are positions: nothing to free (see inodes.py)

    @guarded
    async def opendir(self, inode, ctx):
        await self._dir(inode)
        return inode

    @guarded
    async def readdir(self, fh, start_id, token):
        # Always readdirplus (pyfuse3 asks for it): names come with their attributes,
        # and the offset of each entry is its position, so a resumed listing seeks directly.
        self.stats["readdirs"] += 1
        node = await self._dir(fh)
        layout = await self._layout(node)
        index = start_id
        self._walk_ahead(node, index)
        while index < layout.total:
            i = layout.page_of(index)
            page = await self.pages.page(layout, i)
            self.pages.prefetch(layout, i + 1)  # parsed while this page is being listed
            for at in range(index - layout.starts[i], len(page.entries)):
                entry = page.entries[at]
                ino = child_ino(node.slot, index)
                index += 1
                if isinstance(entry, BadEntry):  # only it fails (a lookup gives EIO)
                    log.error("%s", entry.reason)
                    continue
                attr = self.attrs.entry(
                    ino, entry, self._known_subdirs(ino) if entry.kind == DIR else None)
                if not pyfuse3.readdir_reply(token, os.fsencode(entry.name), attr, index):
                    return

    async def releasedir(self, fh):
        pass

    @guarded
    async def statfs(self, ctx):
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = 4096
        s.f_blocks = (self.bundle.bytes + 4095) // 4096
        s.f_bfree = s.f_bavail = 0
        s.f_files = self.bundle.files
        s.f_ffree = s.f_favail = 0
        s.f_namemax = 255
        return s

    # Extended attributes: each entry's own (user.*), and user.datamonfs.bundle, .repo and
    # .ref, what the mount shows: those answer on every inode but are listed only on the
    # root, so that copying files (cp -a, rsync -X) does not copy them too.

    @guarded
    async def listxattr(self, inode, ctx):
        if inode == ROOT:
            return list(self._xattrs)
        _, entry = await self._entry(inode)
        return [name.encode() for name, _ in entry.xattrs]

    @guarded
    async def getxattr(self, inode, name, ctx):
        value = self._xattrs.get(name)
        if value is not None:
            return value
        if inode != ROOT and name.startswith(b"user."):
            _, entry = await self._entry(inode)
            for have, value in entry.xattrs:
                if have.encode() == name:
                    return value
        raise pyfuse3.FUSEError(pyfuse3.ENOATTR)

    # -- content -------------------------------------------------------------

    @guarded
    async def open(self, inode, flags, ctx):
        if flags & os.O_ACCMODE != os.O_RDONLY or flags & (os.O_TRUNC | os.O_APPEND):
            raise pyfuse3.FUSEError(errno.EROFS)
        _, entry = await self._entry(inode)
        if entry.kind != FILE:
            raise pyfuse3.FUSEError(errno.EISDIR if entry.kind == DIR else errno.ELOOP)
        chunks = await trio.to_thread.run_sync(self.repo.trees.chunks, entry,
                                               limiter=self.meta_limiter)
        fh = self.files.add(OpenFile(self.file_reader_cls(self.chunk_reader, chunks), chunks))
        self.stats["opens"] += 1
        # keep_cache: content never changes, so the kernel page cache stays valid.
        return pyfuse3.FileInfo(fh=fh, keep_cache=True)

    async def _read_file(self, f: OpenFile, off: int, size: int):
        return await self.content.read(f, off, size)

    async def _release_file(self, f: OpenFile) -> None:
        close = getattr(f.reader, "close", None)
        if close:
            close()

    # -- everything that would write -------------------------------------------

    setattr = _read_only(pyfuse3.Operations.setattr)
    mknod = _read_only(pyfuse3.Operations.mknod)
    mkdir = _read_only(pyfuse3.Operations.mkdir)
    unlink = _read_only(pyfuse3.Operations.unlink)
    rmdir = _read_only(pyfuse3.Operations.rmdir)
    symlink = _read_only(pyfuse3.Operations.symlink)
    rename = _read_only(pyfuse3.Operations.rename)
    link = _read_only(pyfuse3.Operations.link)
    write = _read_only(pyfuse3.Operations.write)
    create = _read_only(pyfuse3.Operations.create)
    setxattr = _read_only(pyfuse3.Operations.setxattr)
    removexattr = _read_only(pyfuse3.Operations.removexattr)


def mount_options(fs: ReadOnlyFS) -> set[str]:
    return fuse_options(f"datamonfs:{fs.bundle.repo}@{fs.bundle.id[:12]}", "ro")
