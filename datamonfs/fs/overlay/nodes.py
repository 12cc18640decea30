"""Nodes: the overlay's files, directories and links in memory, and their rows.

A node is either a *base node* (memory only: an entry of the base tree the kernel
has looked up) or a *persisted node* (a row in `nodes`, named by a row in
`dirents`; schema.py). Changing a base node persists it and the directories above
it ("copy-up" of metadata only: content is never copied, see content.py). So a
renamed base directory is one row pointing at its base tree.

`NodeCache` keeps the nodes the kernel knows by inode number, makes one base node
per base name, and loads rows. It and `extents.Extents` hold every SQL statement on
the `nodes`, `dirents` and `extents` tables: the rest of the overlay reads and changes
rows only through them. Callers hold the overlay's lock.

A file or symlink may have several names (hard links): one `dirents` row each,
`nlink` counting them. A node in memory keeps one of them as `parent` and `name`
(docs/ARCHITECTURE.md, "hard links in the overlay").
"""

from __future__ import annotations

import errno
import json
import time
from dataclasses import dataclass
from typing import Iterator

from ...core.model import DIR, FILE, Entry, Xattrs, parse_xattrs, xattrs_to_obj
from ..base_tree import BaseTrees
from ..vfs import ROOT, FsError
from .db import OverlayDB, Tx
from .schema import DirentRow, NodeRow, columns, params


def now() -> int:
    return time.time_ns()


@dataclass(slots=True, eq=False)
class Node:
    ino: int
    parent: int
    name: bytes
    kind: str
    mode: int
    mtime: int
    ctime: int
    size: int  # files: bytes; links: target bytes; directories: 0
    target: str | None = None
    tree: str | None = None  # directories: the base tree their listing starts from
    origin: Entry | None = None  # the base entry this node started as
    staged: bool = False  # files: has written ranges in data/INO
    base_limit: int = 0  # files: origin bytes show below this offset
    nlink: int = 1  # files and links: names; 0: unlinked but open
    uid: int | None = None  # None: the mount's owner
    gid: int | None = None
    atime: int | None = None  # None: the mtime
    xattrs: Xattrs = ()
    persisted: bool = False
    lookups: int = 0  # the kernel's lookup count (memory only)
    opens: int = 0
    subdirs: int | None = None  # directories: how many, once counted (memory only)

    @classmethod
    def of_entry(cls, ino: int, parent: int, name: bytes, entry: Entry, ctime: int | None = None,
                 lookups: int = 0, opens: int = 0) -> Node:
        """A base node: a base entry as it is."""
        return cls(ino, parent, name, entry.kind, entry.mode, entry.mtime,
                   entry.mtime if ctime is None else ctime,
                   entry.size if entry.kind != DIR else 0, entry.target, entry.tree, entry,
                   base_limit=entry.size if entry.kind == FILE else 0, xattrs=entry.xattrs,
                   lookups=lookups, opens=opens)

    @classmethod
    def of_row(cls, row: NodeRow, parent: int, name: bytes) -> Node:
        origin = Entry.from_obj(json.loads(row.origin), "overlay") if row.origin else None
        xattrs = parse_xattrs(json.loads(row.xattrs), "overlay") if row.xattrs else ()
        return cls(row.ino, parent, name, row.kind, row.mode, row.mtime, row.ctime, row.size,
                   row.target, row.tree, origin, bool(row.staged), row.base_limit, row.nlink,
                   row.uid, row.gid, row.atime, xattrs, persisted=True)

    def row(self) -> NodeRow:
        return NodeRow(ino=self.ino, kind=self.kind, mode=self.mode, mtime=self.mtime,
                       ctime=self.ctime, size=self.size, target=self.target, tree=self.tree,
                       origin=json.dumps(self.origin.to_obj()) if self.origin else None,
                       staged=int(self.staged), base_limit=self.base_limit, nlink=self.nlink,
                       uid=self.uid, gid=self.gid, atime=self.atime,
                       xattrs=json.dumps(xattrs_to_obj(self.xattrs)) if self.xattrs else None)


_NODE = f"SELECT {columns(NodeRow)} FROM nodes WHERE ino = ?"
_PUT_NODE = f"INSERT OR REPLACE INTO nodes ({columns(NodeRow)}) VALUES ({params(NodeRow)})"
_PUT_DIRENT = f"INSERT OR REPLACE INTO dirents ({columns(DirentRow)}) VALUES ({params(DirentRow)})"
_CHILDREN = (f"SELECT d.name, d.ino IS NULL, {columns(NodeRow, 'n')} FROM dirents d "
             "LEFT JOIN nodes n ON n.ino = d.ino WHERE d.parent = ? AND d.name > ? "
             "ORDER BY d.name LIMIT ?")


def write_dirty(db: OverlayDB, dirty: list) -> None:
    """The database's row writer (OverlayDB's `write_dirty`): the rows of the persisted
    nodes a transaction changed, inside it."""
    for obj in dirty:
        if isinstance(obj, Node) and obj.persisted:
            db.conn.execute(_PUT_NODE, obj.row()._asdict())


def write_root(db: OverlayDB, tree: str | None, mtime: int) -> None:
    """A new overlay's root directory, inside its first transaction."""
    root = Node(ROOT, ROOT, b"", DIR, 0o755, mtime, mtime, 0, tree=tree, persisted=True)
    db.conn.execute(_PUT_NODE, root.row()._asdict())


class NodeCache:
    """The nodes the kernel may ask about, by inode number, over the rows."""

    def __init__(self, db: OverlayDB, base: BaseTrees):
        self.db = db
        self.base = base
        self._nodes: dict[int, Node] = {}
        self._base_names: dict[tuple[int, bytes], int] = {}  # base nodes by (parent, name)
        self._drop_unlinked()
        row = db.one("SELECT max(ino) FROM nodes")
        self._next = max(row[0] or ROOT, ROOT) + 1
        self._nodes[ROOT] = self.load(ROOT)

    def _drop_unlinked(self) -> None:
        """After a crash: files that were unlinked but open are closed now."""
        gone = [r[0] for r in self.db.all("SELECT ino FROM nodes WHERE nlink = 0")]
        if gone:
            with self.db.tx():
                for ino in gone:
                    self.db.conn.execute("DELETE FROM nodes WHERE ino = ?", (ino,))
                    self.db.conn.execute("DELETE FROM extents WHERE ino = ?", (ino,))

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, ino: object) -> bool:
        return ino in self._nodes

    def cached(self, ino: int) -> Node | None:
        """The node if it is in memory (never reads a row)."""
        return self._nodes.get(ino)

    # -- rows to nodes -----------------------------------------------------------

    def load(self, ino: int, parent: int | None = None, name: bytes | None = None) -> Node:
        """A fresh node from its row (not kept); ENOENT when it has none."""
        row = self.db.one(_NODE, (ino,))
        if row is None:
            raise FsError(errno.ENOENT, f"inode {ino} is gone")
        if parent is None:
            link = self.db.one("SELECT parent, name FROM dirents WHERE ino = ?", (ino,))
            parent, name = link if link else (ROOT, b"")
        return Node.of_row(NodeRow(*row), parent, name)

    def get(self, ino: int, keep: bool = True) -> Node:
        """The node with this inode number; ENOENT when it no longer exists."""
        node = self._nodes.get(ino)
        if node is None:
            node = self.load(ino)
            if keep:
                self._nodes[ino] = node
        return node

    def _child(self, ino: int, parent: int, name: bytes) -> Node:
        node = self._nodes.get(ino)
        if node is None:
            node = self._nodes[ino] = self.load(ino, parent, name)
        return node

    def alloc(self) -> int:
        ino, self._next = self._next, self._next + 1
        return ino

    def base_node(self, parent: Node, name: bytes, entry: Entry) -> Node:
        """The node of a base entry: one per name, made when first asked for."""
        key = (parent.ino, name)
        known = self._base_names.get(key)
        if known is not None and known in self._nodes:
            return self._nodes[known]
        node = Node.of_entry(self.alloc(), parent.ino, name, entry)
        self._nodes[node.ino] = node
        self._base_names[key] = node.ino
        return node

    def find(self, parent: Node, name: bytes) -> Node | None:
        """The node named `name` in a directory, or None. Makes base nodes as needed."""
        if parent.persisted:
            row = self.db.one("SELECT ino FROM dirents WHERE parent = ? AND name = ?",
                              (parent.ino, name))
            if row is not None:
                return None if row[0] is None else self._child(row[0], parent.ino, name)
        if parent.tree is None:
            return None
        known = self._base_names.get((parent.ino, name))
        if known is not None and known in self._nodes:
            return self._nodes[known]
        try:
            text = name.decode("utf-8")
        except UnicodeDecodeError:
            return None
        entry = self.base.lookup(parent.tree, text)
        return self.base_node(parent, name, entry) if entry is not None else None

    def entries_after(self, parent: Node, after: bytes | None,
                      limit: int) -> list[tuple[bytes, Node]]:
        """Up to `limit` (name, node) of a directory in name order, after `after`: its
        base tree's entries merged with its own names."""
        out: list[tuple[bytes, Node]] = []
        base: Iterator[Entry] = iter(())
        if parent.tree is not None:
            text = after.decode("utf-8", "surrogatepass") if after else None
            base = self.base.entries_after(parent.tree, text)
        over = self._dirents_after(parent.ino, after) if parent.persisted else iter(())
        b, o = next(base, None), next(over, None)
        while len(out) < limit and (b is not None or o is not None):
            bname = b.name.encode("utf-8", "surrogatepass") if b is not None else None
            if o is None or (bname is not None and bname < o[0]):
                out.append((bname, self.base_node(parent, bname, b)))
                b = next(base, None)
                continue
            if bname == o[0]:
                b = next(base, None)
            if o[1] is not None:
                out.append((o[0], self._child(o[1], parent.ino, o[0])))
            o = next(over, None)
        return out

    def _dirents_after(self, parent: int, after: bytes | None) -> Iterator[tuple[bytes, int | None]]:
        last = after or b""
        while True:
            rows = self.db.all("SELECT name, ino FROM dirents WHERE parent = ? AND name > ? "
                               "ORDER BY name LIMIT 256", (parent, last))
            yield from rows
            if len(rows) < 256:
                return
            last = rows[-1][0]

    def path_of(self, node: Node) -> str:
        parts = []
        while node.ino != ROOT:
            parts.append(node.name.decode("utf-8", "replace"))
            node = self.get(node.parent)
        return "/".join(reversed(parts))

    # -- nodes to rows -----------------------------------------------------------

    def add(self, tx: Tx, node: Node) -> None:
        """A node made in this transaction: kept, and its row written, if it commits."""
        tx.new(node)
        self._nodes[node.ino] = node
        tx.undo(lambda: self._nodes.pop(node.ino, None))

    def persist(self, node: Node, tx: Tx) -> None:
        """Give a node (and the directories above it) a row: it differs from the base now."""
        if node.persisted:
            return
        if node.nlink > 0:
            parent = self.get(node.parent)
            self.persist(parent, tx)
            self.db.conn.execute(_PUT_DIRENT, DirentRow(parent.ino, node.name, node.ino)._asdict())
        tx.set(node, persisted=True)

    def link_name(self, tx: Tx, parent: Node, name: bytes, node: Node | None) -> None:
        """Point a name of a persisted directory at a node, or white it out (None)."""
        self.db.conn.execute(_PUT_DIRENT,
                             DirentRow(parent.ino, name, node.ino if node else None)._asdict())
        t = now()
        tx.set(parent, mtime=t, ctime=t)
        key = (parent.ino, name)
        tx.after(lambda: self._base_names.pop(key, None))

    def delete(self, tx: Tx, node: Node) -> None:
        """Delete a node's rows: its own, its extents, and (a directory) its names."""
        c = self.db.conn
        c.execute("DELETE FROM nodes WHERE ino = ?", (node.ino,))
        c.execute("DELETE FROM extents WHERE ino = ?", (node.ino,))
        c.execute("DELETE FROM dirents WHERE parent = ?", (node.ino,))
        tx.set(node, persisted=False)

    def forget(self, node: Node) -> None:
        """Drop a node from memory (the kernel no longer knows it)."""
        del self._nodes[node.ino]
        key = (node.parent, node.name)
        if self._base_names.get(key) == node.ino:
            del self._base_names[key]

    # -- what changes and commits read ---------------------------------------------

    def staged(self) -> set[int]:
        """Files with written ranges, linked or not."""
        return {r[0] for r in self.db.all("SELECT ino FROM nodes WHERE staged = 1")}

    def children(self, parent: int, after: bytes, limit: int) -> list[tuple[bytes, Node | None]]:
        """A directory's own names after `after` in name order, each with a detached copy
        of its node as stored (None: a whiteout), for describing the changes."""
        rows = self.db.all(_CHILDREN, (parent, after, limit))
        return [(name, None if whiteout else Node.of_row(NodeRow(*row), parent, name))
                for name, whiteout, *row in rows]

    def has_children(self, parent: int) -> bool:
        return self.db.one("SELECT 1 FROM dirents WHERE parent = ? LIMIT 1", (parent,)) is not None

    # -- names of a node and subdirectories of a directory ------------------------------

    def move_name(self, tx: Tx, node: Node) -> None:
        """After one of a node's names went (in this transaction): keep one it still has."""
        row = self.db.conn.execute("SELECT parent, name FROM dirents WHERE ino = ? LIMIT 1",
                                   (node.ino,)).fetchone()
        if row is not None and (row[0], row[1]) != (node.parent, node.name):
            tx.set(node, parent=row[0], name=row[1])

    def subdirs(self, node: Node) -> int:
        """A directory's subdirectories: its base tree's, changed by its own names. Counted
        once (reading the base pages, as a listing does), then kept up by every change."""
        if node.subdirs is not None:
            return node.subdirs
        count = self.base.subdirs(node.tree) if node.tree is not None else 0
        if node.persisted:
            rows = self.db.all("SELECT d.name, n.kind FROM dirents d LEFT JOIN nodes n "
                               "ON n.ino = d.ino WHERE d.parent = ?", (node.ino,))
            for name, kind in rows:
                count += kind == DIR
                was = None
                if node.tree is not None:
                    try:
                        was = self.base.lookup(node.tree, name.decode("utf-8"))
                    except UnicodeDecodeError:
                        pass
                count -= was is not None and was.kind == DIR
        node.subdirs = count
        return count

    # -- after a commit --------------------------------------------------------------

    def local_state(self) -> set[int]:
        """The nodes whose rows a commit keeps (they hold what a bundle does not record: an
        owner, more than one name) and the directories above them."""
        keep = {r[0] for r in self.db.all(
            "SELECT ino FROM nodes WHERE nlink > 0 AND ino != ? AND (uid IS NOT NULL OR "
            "gid IS NOT NULL OR nlink > 1)", (ROOT,))}
        todo = list(keep)
        while todo:
            for (parent,) in self.db.all("SELECT DISTINCT parent FROM dirents WHERE ino = ?",
                                         (todo.pop(),)):
                if parent != ROOT and parent not in keep:
                    keep.add(parent)
                    todo.append(parent)
        return keep

    def rebase_rows(self, tx: Tx, root: Node, tree: str, kept: dict[int, Entry]) -> list[int]:
        """Inside the transaction that empties the overlay onto a committed `tree`: delete
        every row but the root's, those of files unlinked while open, and those of the
        nodes in `kept` (by inode, their committed entries), which now point at those
        entries with nothing staged. Returns the files whose data files must go once it
        is committed."""
        c = self.db.conn
        c.execute("CREATE TEMP TABLE IF NOT EXISTS kept (ino INTEGER PRIMARY KEY)")
        c.execute("DELETE FROM kept")
        c.executemany("INSERT INTO kept (ino) VALUES (?)", ((ino,) for ino in kept))
        staged = [r[0] for r in c.execute(
            "SELECT ino FROM nodes WHERE nlink > 0 AND staged = 1 AND ino != ?", (ROOT,))]
        c.execute("DELETE FROM extents WHERE ino IN "
                  "(SELECT ino FROM nodes WHERE nlink > 0 AND ino != ?)", (ROOT,))
        c.execute("DELETE FROM nodes WHERE nlink > 0 AND ino != ? AND ino NOT IN "
                  "(SELECT ino FROM kept)", (ROOT,))
        c.execute("DELETE FROM dirents WHERE ino IS NULL OR ino NOT IN (SELECT ino FROM kept)")
        for ino, entry in kept.items():
            old = self.load(ino)
            node = self._committed(old, entry)
            c.execute(_PUT_NODE, node.row()._asdict())
        c.execute("DELETE FROM kept")
        tx.set(root, tree=tree)
        return staged

    @staticmethod
    def _committed(node: Node, entry: Entry) -> Node:
        """A node as its committed entry, keeping what the bundle does not record."""
        fresh = Node.of_entry(node.ino, node.parent, node.name, entry, node.ctime, node.lookups,
                              node.opens)
        fresh.nlink, fresh.uid, fresh.gid, fresh.atime = node.nlink, node.uid, node.gid, node.atime
        fresh.persisted = node.persisted
        return fresh

    def rebase_nodes(self, tree: str, entries: dict[int, Entry], paths: dict[int, str],
                     kept: dict[int, Entry]) -> None:
        """After `rebase_rows` committed: nodes the kernel knows become base nodes of their
        committed entries (`entries` by inode, else found by their old `paths`), or, kept,
        persisted nodes of them."""
        self._base_names.clear()
        for ino, node in list(self._nodes.items()):
            if ino == ROOT or not node.persisted:
                if node.nlink and ino != ROOT:
                    self._base_names[(node.parent, node.name)] = ino
                continue
            if node.nlink == 0:
                continue  # still open, still staged: its rows were kept
            entry = kept.get(ino) or entries.get(ino) or self.entry_at(tree, paths.get(ino))
            if entry is None:  # not in the committed tree (cannot happen): forget it
                del self._nodes[ino]
                continue
            fresh = self._committed(node, entry)
            fresh.persisted = ino in kept
            for slot in Node.__slots__:
                setattr(node, slot, getattr(fresh, slot))
            if not node.persisted:
                self._base_names[(node.parent, node.name)] = ino

    def linked_paths(self, skip: dict[int, Entry]) -> dict[int, str]:
        """The paths of the persisted, linked nodes in memory not in `skip`."""
        return {ino: self.path_of(n) for ino, n in self._nodes.items()
                if n.persisted and n.nlink and ino != ROOT and ino not in skip}

    def entry_at(self, tree: str, path: str | None) -> Entry | None:
        entry = None
        for part in (path or "").split("/") if path else ():
            if tree is None:
                return None
            entry = self.base.lookup(tree, part)
            if entry is None:
                return None
            tree = entry.tree
        return entry
