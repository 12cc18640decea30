"""Names: lookups, listings and every change to the tree, as `Overlay` (overlay.py)
answers them for the FUSE layer.

A namespace change is one transaction: the nodes it touches are persisted first
(with the directories above them), the names change, and the nodes' rows are
written when it commits; memory is put back if it fails (db.Tx). A node unlinked
while open keeps its row (nlink 0) until its last close; a node with several names
(hard links) loses one per unlink.

Owners (attributes.py): a node records its uid and gid only when they are not the
overlay's owner, so a mount used by one user records none.
"""

from __future__ import annotations

import errno
import stat
import threading
from typing import Callable

from ...core import rules
from ...core.model import DIR, FILE, LINK
from ..vfs import ROOT, FsError
from .staged import StagedData
from .db import OverlayDB, Tx
from .nodes import Node, NodeCache, now

RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2


class Namespace:
    """The names half of `Overlay`, which it is a part of. Errors are FsError(errno)."""

    lock: threading.RLock
    db: OverlayDB
    nodes: NodeCache
    data: StagedData
    owner: tuple[int, int]
    _own: Callable[[int | None, int | None], tuple[int | None, int | None]]
    owner_of: Callable[[Node], tuple[int, int]]

    # -- looking and listing ---------------------------------------------------

    def get(self, ino: int, keep: bool = True) -> Node:
        """The node with this inode number; ENOENT when it no longer exists."""
        with self.lock:
            return self.nodes.get(ino, keep)

    def _dir(self, ino: int) -> Node:
        node = self.nodes.get(ino)
        if node.kind != DIR:
            raise FsError(errno.ENOTDIR)
        return node

    def lookup(self, parent_ino: int, name: bytes) -> Node:
        """A name in a directory; counts one kernel lookup of the result."""
        with self.lock:
            parent = self._dir(parent_ino)
            if len(name) > rules.MAX_NAME_BYTES:  # a name no directory here can hold
                raise FsError(errno.ENAMETOOLONG)
            node = self.nodes.find(parent, name)
            if node is None:
                raise FsError(errno.ENOENT)
            node.lookups += 1
            return node

    def count_lookup(self, ino: int) -> None:
        """One more kernel lookup of a node the kernel got otherwise (`.` or `..`, an
        entry of a readdirplus reply it took)."""
        with self.lock:
            node = self.nodes.cached(ino)
            if node is not None:
                node.lookups += 1

    def forget(self, ino: int, n: int) -> None:
        with self.lock:
            node = self.nodes.cached(ino)
            if node is None:
                return
            node.lookups -= n
            # Base directories stay: their children name them as parent.
            if (node.lookups <= 0 and node.opens == 0 and ino != ROOT
                    and (node.persisted or node.kind != DIR)):
                self.nodes.forget(node)
                self.data.forget(ino)

    def list_dir(self, ino: int, after: bytes | None = None, limit: int = 256) -> list[tuple[bytes, Node]]:
        """Up to `limit` (name, node) of a directory in name order, after `after`."""
        with self.lock:
            return self.nodes.entries_after(self._dir(ino), after, limit)

    def _empty(self, node: Node) -> bool:
        return not self.list_dir(node.ino, None, 1)

    def subdirs(self, node: Node, known_only: bool = False) -> int | None:
        """A directory's subdirectories (its link count is 2 more); with `known_only`,
        None when they were not counted yet (counting reads the directory's pages)."""
        with self.lock:
            if known_only and node.subdirs is None and (node.persisted or node.tree):
                return None
            return self.nodes.subdirs(node)

    def path_of(self, node: Node) -> str:
        with self.lock:
            return self.nodes.path_of(node)

    # -- namespace changes -----------------------------------------------------

    def _make(self, parent_ino: int, name: bytes, kind: str, mode: int, uid: int | None,
              gid: int | None, target: str | None = None) -> Node:
        with self.lock:
            parent = self._dir(parent_ino)
            _check_name(name)
            if self.nodes.find(parent, name) is not None:
                raise FsError(errno.EEXIST)
            mode &= 0o7777
            if parent.mode & stat.S_ISGID:  # a setgid directory gives its group (and to a
                gid = self.owner_of(parent)[1]  # directory its setgid bit), as ext4 does
                if kind == DIR:
                    mode |= stat.S_ISGID
            t = now()
            size = len(target.encode()) if target is not None else 0
            node = Node(self.nodes.alloc(), parent.ino, name, kind, mode, t, t, size,
                        target=target, atime=t, persisted=True, subdirs=0 if kind == DIR else None)
            node.uid, node.gid = self._own(uid, gid)
            with self.db.tx() as tx:
                self.nodes.persist(parent, tx)
                self.nodes.add(tx, node)
                self.nodes.link_name(tx, parent, name, node)
                if kind == DIR:
                    self._count_subdir(tx, parent, +1)
            node.lookups += 1
            return node

    @staticmethod
    def _count_subdir(tx: Tx, parent: Node, delta: int) -> None:
        if parent.subdirs is not None:
            tx.set(parent, subdirs=parent.subdirs + delta)

    def create(self, parent_ino: int, name: bytes, mode: int, uid: int | None = None,
               gid: int | None = None) -> Node:
        return self._make(parent_ino, name, FILE, mode, uid, gid)

    def mkdir(self, parent_ino: int, name: bytes, mode: int, uid: int | None = None,
               gid: int | None = None) -> Node:
        return self._make(parent_ino, name, DIR, mode, uid, gid)

    def symlink(self, parent_ino: int, name: bytes, target: bytes, uid: int | None = None,
               gid: int | None = None) -> Node:
        with self.lock:
            self._check_link_target(self._dir(parent_ino), target)
            return self._make(parent_ino, name, LINK, 0o777, uid, gid, target.decode("utf-8"))

    def _check_link_target(self, parent: Node, target: bytes | str) -> None:
        depth = self.nodes.path_of(parent).count("/") + (parent.ino != ROOT)
        problem = rules.link_problem(target, depth)
        if problem:  # a bundle keeps only links inside the dataset (as upload does)
            raise FsError(problem.errno, f"symlink target {target!r:.300}: {problem}")

    def link(self, ino: int, new_parent_ino: int, new_name: bytes) -> Node:
        """A new name for a file or symlink (a hard link): one node, one more name."""
        with self.lock:
            node = self.nodes.get(ino)
            parent = self._dir(new_parent_ino)
            if node.kind == DIR:
                raise FsError(errno.EPERM)
            if node.nlink == 0:
                raise FsError(errno.ENOENT)  # as link(2) of an unlinked file
            _check_name(new_name)
            if self.nodes.find(parent, new_name) is not None:
                raise FsError(errno.EEXIST)
            if node.kind == LINK:
                self._check_link_target(parent, node.target)
            with self.db.tx() as tx:
                self.nodes.persist(node, tx)
                self.nodes.persist(parent, tx)
                self.nodes.link_name(tx, parent, new_name, node)
                tx.set(node, nlink=node.nlink + 1, ctime=now())
            node.lookups += 1
            return node

    def unlink(self, parent_ino: int, name: bytes) -> None:
        with self.lock:
            parent = self._dir(parent_ino)
            node = self._named(parent, name)
            if node.kind == DIR:
                raise FsError(errno.EISDIR)
            self._remove(parent, name, node)

    def rmdir(self, parent_ino: int, name: bytes) -> None:
        with self.lock:
            parent = self._dir(parent_ino)
            node = self._named(parent, name)
            if node.kind != DIR:
                raise FsError(errno.ENOTDIR)
            if node.ino == ROOT:
                raise FsError(errno.EBUSY)
            if not self._empty(node):
                raise FsError(errno.ENOTEMPTY)
            self._remove(parent, name, node)

    def _named(self, parent: Node, name: bytes) -> Node:
        node = self.nodes.find(parent, name)
        if node is None:
            raise FsError(errno.ENOENT)
        return node

    def _remove(self, parent: Node, name: bytes, node: Node) -> None:
        """One transaction: the name is whited out, its node loses it."""
        with self.db.tx() as tx:
            self.nodes.persist(parent, tx)
            self.nodes.link_name(tx, parent, name, None)
            self._unlink_node(tx, node)
            if node.kind == DIR:
                self._count_subdir(tx, parent, -1)

    def rename(self, old_parent: int, old_name: bytes, new_parent: int, new_name: bytes,
               flags: int = 0) -> None:
        with self.lock:
            if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) or (
                    flags & RENAME_NOREPLACE and flags & RENAME_EXCHANGE):
                raise FsError(errno.EINVAL, "unknown or conflicting rename flags")
            p1, p2 = self._dir(old_parent), self._dir(new_parent)
            _check_name(new_name)
            src = self._named(p1, old_name)
            dst = self.nodes.find(p2, new_name)
            if flags & RENAME_EXCHANGE:
                if dst is None:
                    raise FsError(errno.ENOENT)
                return self._exchange(p1, old_name, src, p2, new_name, dst)
            if dst is src:
                return  # two names of one node: POSIX says do nothing
            if dst is not None and flags & RENAME_NOREPLACE:
                raise FsError(errno.EEXIST)
            if src.kind == DIR:
                if dst is not None and dst.kind != DIR:
                    raise FsError(errno.ENOTDIR)
                if dst is not None and not self._empty(dst):
                    raise FsError(errno.ENOTEMPTY)
                self._check_not_below(p2, src)
            elif dst is not None and dst.kind == DIR:
                raise FsError(errno.EISDIR)
            with self.db.tx() as tx:
                self.nodes.persist(src, tx)
                self.nodes.persist(p2, tx)
                self.nodes.link_name(tx, p1, old_name, None)
                self.nodes.link_name(tx, p2, new_name, src)
                tx.set(src, parent=p2.ino, name=new_name, ctime=now())
                if dst is not None:  # after the names: it may keep another one
                    self._unlink_node(tx, dst)
                if src.kind == DIR:
                    self._count_subdir(tx, p1, -1)
                    self._count_subdir(tx, p2, +1 - (dst is not None))

    def _check_not_below(self, directory: Node, moved: Node) -> None:
        """EINVAL when `directory` is `moved` or below it: a directory never goes into itself."""
        up = directory
        while True:
            if up is moved:
                raise FsError(errno.EINVAL)
            if up.ino == ROOT:
                return
            up = self.nodes.get(up.parent)

    def _exchange(self, p1: Node, name1: bytes, a: Node, p2: Node, name2: bytes,
                  b: Node) -> None:
        """renameat2(RENAME_EXCHANGE): the two names swap their nodes, in one transaction."""
        if a is b:
            return
        if a.kind == DIR:
            self._check_not_below(p2, a)
        if b.kind == DIR:
            self._check_not_below(p1, b)
        with self.db.tx() as tx:
            for node in (a, b, p1, p2):
                self.nodes.persist(node, tx)
            self.nodes.link_name(tx, p1, name1, b)
            self.nodes.link_name(tx, p2, name2, a)
            t = now()
            tx.set(a, parent=p2.ino, name=name2, ctime=t)
            tx.set(b, parent=p1.ino, name=name1, ctime=t)
            moved = (a.kind == DIR) - (b.kind == DIR)  # directories p1 gave to p2
            if moved and p1 is not p2:
                self._count_subdir(tx, p1, -moved)
                self._count_subdir(tx, p2, +moved)

    def _unlink_node(self, tx: Tx, node: Node) -> None:
        """A node loses one name (whited out in this transaction): with none left it goes,
        or waits for its last close."""
        tx.set(node, nlink=max(node.nlink - 1, 0) if node.kind != DIR else 0, ctime=now())
        if node.nlink:
            self.nodes.move_name(tx, node)
        elif node.persisted and node.opens == 0:
            self._delete(tx, node)

    def _delete(self, tx: Tx, node: Node) -> None:
        """Its rows now, its data file once they are gone (committed)."""
        self.nodes.delete(tx, node)
        if node.staged:
            tx.once_committed(lambda: self.data.drop(node.ino))

    # -- open files ------------------------------------------------------------

    def open(self, ino: int, truncate: bool = False) -> Node:
        with self.lock:
            node = self.nodes.get(ino)
            if node.kind == DIR:
                raise FsError(errno.EISDIR)
            if node.kind != FILE:
                raise FsError(errno.ELOOP)
            if truncate:  # times change even when the file was empty (POSIX open)
                self.setattr(ino, size=0, mtime=now())
            node.opens += 1
            return node

    def release(self, ino: int) -> None:
        with self.lock:
            node = self.nodes.cached(ino)
            if node is None:
                return
            node.opens -= 1
            if node.opens == 0 and node.nlink == 0 and node.persisted:
                with self.db.tx() as tx:
                    self._delete(tx, node)


def _check_name(name: bytes) -> None:
    problem = rules.name_problem(name)
    if problem:  # a bundle could not hold it
        raise FsError(problem.errno, f"file name {name!r:.300}: {problem}")
