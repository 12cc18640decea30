"""Attributes of nodes: modes, sizes, times, owners and extended attributes, as
`Overlay` (overlay.py) changes them for the FUSE layer's setattr and xattr calls.

Owners: a node records its uid and gid only when they are not the overlay's owner
(`Overlay.owner`, what the bundle's entries show), so a mount used by one user records
none, and a commit keeps rows only for nodes other users made (nodes.local_state).
Permission checks are the kernel's (default_permissions): it asks only for what the
caller may do. Extended attributes follow the rules of a bundle (core/rules.py).
"""

from __future__ import annotations

import errno
import threading

from ...core import rules
from ...core.model import DIR, FILE
from ..vfs import FsError
from .staged import StagedData
from .db import OverlayDB
from .nodes import Node, NodeCache, now


class Attributes:
    """The attributes half of `Overlay`, which it is a part of. Errors are FsError(errno)."""

    lock: threading.RLock
    db: OverlayDB
    nodes: NodeCache
    data: StagedData
    owner: tuple[int, int]

    def owner_of(self, node: Node) -> tuple[int, int]:
        uid, gid = self.owner
        return (uid if node.uid is None else node.uid, gid if node.gid is None else node.gid)

    def _own(self, uid: int | None, gid: int | None) -> tuple[int | None, int | None]:
        """Owner values as a row keeps them: None for the overlay's owner."""
        return (None if uid == self.owner[0] else uid, None if gid == self.owner[1] else gid)

    def setattr(self, ino: int, mode: int | None = None, size: int | None = None,
                mtime: int | None = None, atime: int | None = None, ctime: int | None = None,
                uid: int | None = None, gid: int | None = None) -> Node:
        """Change what is given (None: leave it). Permission is the kernel's to check."""
        with self.lock:
            node = self.nodes.get(ino)
            if size is not None and node.kind != FILE:
                raise FsError(errno.EISDIR if node.kind == DIR else errno.EINVAL)
            if size is not None and size < 0:
                raise FsError(errno.EINVAL)
            t = now()
            shrinks = size is not None and size < node.size and node.staged
            with self.db.tx() as tx:
                self.nodes.persist(node, tx)
                tx.set(node, ctime=t if ctime is None else ctime)
                if mode is not None:
                    node.mode = mode & 0o7777
                if size is not None and size != node.size:  # POSIX: times change with it
                    if size < node.size:
                        self.data.truncate(tx, node.ino, size, node.staged)
                        node.base_limit = min(node.base_limit, size)
                    node.size = size
                    node.mtime = t
                if mtime is not None:
                    node.mtime = mtime
                if atime is not None:
                    node.atime = atime
                if uid is not None:
                    node.uid = self._own(uid, None)[0]
                if gid is not None:
                    node.gid = self._own(None, gid)[1]
            if shrinks:  # the data file is cut once this is committed: now, under the lock
                self.db.flush()
            return node

    # -- extended attributes ----------------------------------------------------------

    def xattrs(self, ino: int) -> tuple:
        with self.lock:
            return self.nodes.get(ino).xattrs

    def set_xattr(self, ino: int, name: bytes, value: bytes | None) -> None:
        """Set (or with None remove) one of a node's extended attributes; the rules of a
        bundle apply (user.* only, ext4's sizes)."""
        with self.lock:
            node = self.nodes.get(ino)
            problem = rules.xattr_name_problem(name)
            if problem is None and value is not None:
                problem = rules.xattr_value_problem(value)
            if problem:
                raise FsError(problem.errno, f"extended attribute {name!r:.300}: {problem}")
            text = name.decode("utf-8")
            pairs = dict(node.xattrs)
            if value is None:
                if text not in pairs:
                    raise FsError(errno.ENODATA)
                del pairs[text]
            else:
                pairs[text] = value
            xattrs = tuple(sorted(pairs.items()))
            problem = rules.xattrs_problem(node.kind, xattrs)
            if problem:
                raise FsError(problem.errno, f"extended attributes: {problem}")
            with self.db.tx() as tx:
                self.nodes.persist(node, tx)
                tx.set(node, xattrs=xattrs, ctime=now())
