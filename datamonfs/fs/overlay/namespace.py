"""Names: lookups, listings and every change to the tree, as `Overlay` (overlay.py)
answers them for the FUSE layer.

A namespace change is one transaction: the nodes it touches are persisted first
(with the directories above them), the names change, and the nodes' rows are
written when it commits; memory is put back if it fails (db.Tx). A node unlinked
while open keeps its row (nlink 0) until its last close.
"""

from __future__ import annotations

import errno
import threading

from ...core import rules
from ...core.model import DIR, FILE, LINK
from ..vfs import ROOT, FsError
from .content import StagedData
from .db import OverlayDB, Tx
from .nodes import Node, NodeCache, now

RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2


class Namespace:
    """The names half of `Overlay`, which it is a part of. Errors are FsError(errno)."""

    lock: threading.RLock
    db: OverlayDB
    nodes: NodeCache
    data: StagedData

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
            node = self.nodes.find(self._dir(parent_ino), name)
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

    def path_of(self, node: Node) -> str:
        with self.lock:
            return self.nodes.path_of(node)

    # -- namespace changes -----------------------------------------------------

    def _make(self, parent_ino: int, name: bytes, kind: str, mode: int,
              target: str | None = None) -> Node:
        with self.lock:
            parent = self._dir(parent_ino)
            _check_name(name)
            if self.nodes.find(parent, name) is not None:
                raise FsError(errno.EEXIST)
            t = now()
            size = len(target.encode()) if target is not None else 0
            node = Node(self.nodes.alloc(), parent.ino, name, kind, mode & 0o7777, t, t, size,
                        target=target, persisted=True)
            with self.db.tx() as tx:
                self.nodes.persist(parent, tx)
                self.nodes.add(tx, node)
                self.nodes.link_name(tx, parent, name, node)
            node.lookups += 1
            return node

    def create(self, parent_ino: int, name: bytes, mode: int) -> Node:
        return self._make(parent_ino, name, FILE, mode)

    def mkdir(self, parent_ino: int, name: bytes, mode: int) -> Node:
        return self._make(parent_ino, name, DIR, mode)

    def symlink(self, parent_ino: int, name: bytes, target: bytes) -> Node:
        with self.lock:
            depth = self.nodes.path_of(self._dir(parent_ino)).count("/") + (parent_ino != ROOT)
            problem = rules.link_problem(target, depth)
            if problem:  # a bundle keeps only links inside the dataset (as upload does)
                raise FsError(problem.errno, f"symlink target {target!r:.300}: {problem}")
            return self._make(parent_ino, name, LINK, 0o777, target.decode("utf-8"))

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
        """One transaction: the name is whited out, its node unlinked."""
        with self.db.tx() as tx:
            self.nodes.persist(parent, tx)
            self.nodes.link_name(tx, parent, name, None)
            self._unlink_node(tx, node)

    def rename(self, old_parent: int, old_name: bytes, new_parent: int, new_name: bytes,
               flags: int = 0) -> None:
        with self.lock:
            if flags & RENAME_EXCHANGE or flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE):
                raise FsError(errno.EINVAL, "rename flags other than RENAME_NOREPLACE")
            p1, p2 = self._dir(old_parent), self._dir(new_parent)
            _check_name(new_name)
            src = self._named(p1, old_name)
            dst = self.nodes.find(p2, new_name)
            if dst is src:
                return
            if dst is not None and flags & RENAME_NOREPLACE:
                raise FsError(errno.EEXIST)
            if src.kind == DIR:
                if dst is not None and dst.kind != DIR:
                    raise FsError(errno.ENOTDIR)
                if dst is not None and not self._empty(dst):
                    raise FsError(errno.ENOTEMPTY)
                up = p2
                while True:  # never into itself or below
                    if up is src:
                        raise FsError(errno.EINVAL)
                    if up.ino == ROOT:
                        break
                    up = self.nodes.get(up.parent)
            elif dst is not None and dst.kind == DIR:
                raise FsError(errno.EISDIR)
            with self.db.tx() as tx:
                self.nodes.persist(src, tx)
                self.nodes.persist(p2, tx)
                if dst is not None:
                    self._unlink_node(tx, dst)
                self.nodes.link_name(tx, p1, old_name, None)
                self.nodes.link_name(tx, p2, new_name, src)
                tx.set(src, parent=p2.ino, name=new_name, ctime=now())

    def setattr(self, ino: int, mode: int | None = None, size: int | None = None,
                mtime: int | None = None) -> Node:
        with self.lock:
            node = self.nodes.get(ino)
            if size is not None and node.kind != FILE:
                raise FsError(errno.EISDIR if node.kind == DIR else errno.EINVAL)
            if size is not None and size < 0:
                raise FsError(errno.EINVAL)
            t = now()
            with self.db.tx() as tx:
                self.nodes.persist(node, tx)
                tx.set(node, ctime=t)
                if mode is not None:
                    node.mode = mode & 0o7777
                if size is not None:
                    if size < node.size:
                        self.data.truncate(tx, node.ino, size, node.staged)
                        node.base_limit = min(node.base_limit, size)
                    node.size = size
                    node.mtime = t
                if mtime is not None:
                    node.mtime = mtime
            return node

    def _unlink_node(self, tx: Tx, node: Node) -> None:
        tx.set(node, nlink=0, ctime=now())
        if node.persisted and node.opens == 0:
            self._delete(tx, node)

    def _delete(self, tx: Tx, node: Node) -> None:
        """Its rows now, its data file once they are gone (committed)."""
        self.nodes.delete(tx, node)
        if node.staged:
            tx.after(lambda: self.data.drop(node.ino))

    # -- open files ------------------------------------------------------------

    def open(self, ino: int, truncate: bool = False) -> Node:
        with self.lock:
            node = self.nodes.get(ino)
            if node.kind == DIR:
                raise FsError(errno.EISDIR)
            if node.kind != FILE:
                raise FsError(errno.ELOOP)
            if truncate and node.size:
                self.setattr(ino, size=0)
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
