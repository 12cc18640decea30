"""The writable overlay: staged changes over a base tree, surviving SIGKILL.

A writable mount shows a base tree (a bundle's, or nothing) with changes on top.
The changes live in a per-mount directory:

    overlay.db      SQLite (see overlay_db.py): nodes that differ from the base or
                    lie on the path to one that does, directory entries that
                    differ (a NULL inode is a whiteout: the base name is deleted),
                    the written ranges of staged files, and the mount's identity
    data/INO        a sparse file per staged file: written ranges only

A node is either a *base node* (memory only: an entry of the base tree the
kernel has looked up) or a *persisted node* (a row). Changing a base node
persists it and its ancestors ("copy-up" of metadata only): a file's content is
never copied; writes land in its data file and its extent list, and unwritten
ranges below `base_limit` read from the base chunks, above it as zeros. So a
renamed base directory is one row pointing at its base tree, and changing four
bytes of a 10 GiB file stages four bytes.

Order of writes makes every crash point consistent: data is written before the
extent that makes it visible; a namespace change is one transaction; data files
are deleted only after the rows that name them. Nodes unlinked while open are
kept until their last close; a restart deletes the ones a crash left behind.

Everything here is blocking and thread-safe (one lock); the FUSE layer calls it
from worker threads. Errors are FsError(errno).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from typing import Iterator

from ..core import rules
from ..core.model import DIR, FILE, LINK, Bundle, Entry
from ..core.trees import TreeReader
from .base_tree import BaseTrees
from .vfs import ROOT
from .overlay_db import SCHEMA_VERSION, FsError, OverlayDB, Tx
from .staged_data import OpenReader, StagedData

RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
DB_NAME, DATA_DIR = "overlay.db", "data"


@dataclass(frozen=True)
class OverlayInfo:
    """What an overlay is staged on, recorded in it so a restarted daemon can find it."""

    repo: str
    branch: str
    bundle: str  # "" when it started from nothing (mount --rw --new)
    tree: str  # "" likewise
    mountpoint: str
    created: float
    bundle_time: int = 0  # shown as the root directory's mtime
    uid: int = -1  # who mounted it (only they, root or the daemon's user may manage it)

    def to_json(self) -> dict:
        return asdict(self)


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
    nlink: int = 1
    persisted: bool = False
    lookups: int = 0  # the kernel's lookup count (memory only)
    opens: int = 0


def read_info(directory: str) -> OverlayInfo:
    """An overlay's identity, without opening it for use."""
    db = OverlayDB(os.path.join(directory, DB_NAME))
    try:
        info = db.get_meta("info")
        if not info:
            raise FsError(errno.EINVAL, f"{directory} holds no overlay")
        return OverlayInfo(**info)
    finally:
        db.close()


def _now() -> int:
    return time.time_ns()


class Overlay:
    def __init__(self, directory: str, trees: TreeReader, open_reader: OpenReader):
        self.dir = directory
        self.data_dir = os.path.join(directory, DATA_DIR)
        self.db = OverlayDB(os.path.join(directory, DB_NAME))
        self.db.flush = self._flush
        self.trees = trees
        self.base = BaseTrees(trees)
        self.data = StagedData(self.data_dir, self.db, trees, open_reader)
        self.lock = threading.RLock()
        self.nodes: dict[int, Node] = {}
        self._base_names: dict[tuple[int, bytes], int] = {}
        version = self.db.get_meta("version")
        if version != SCHEMA_VERSION:
            raise FsError(errno.EINVAL, f"overlay {directory} has format {version!r}; this "
                                        f"datamonfs reads format {SCHEMA_VERSION}")
        self.info = OverlayInfo(**self.db.get_meta("info"))
        self._recover()
        row = self.db.one("SELECT max(ino) FROM nodes")
        self._next = max(row[0] or ROOT, ROOT) + 1
        self.nodes[ROOT] = self._load(ROOT)

    @classmethod
    def create_in(cls, directory: str, info: OverlayInfo, trees: TreeReader,
                  open_reader: OpenReader) -> "Overlay":
        os.makedirs(os.path.join(directory, DATA_DIR), mode=0o700, exist_ok=True)
        db = OverlayDB(os.path.join(directory, DB_NAME))
        try:
            if db.get_meta("info"):
                raise FsError(errno.EEXIST, f"{directory} already holds an overlay")
            with db.tx():
                db.set_meta("version", SCHEMA_VERSION)
                db.set_meta("info", info.to_json())
                db.conn.execute(
                    "INSERT INTO nodes (ino, kind, mode, mtime, ctime, size, tree) "
                    "VALUES (?, 'dir', 493, ?, ?, 0, ?)",
                    (ROOT, info.bundle_time, info.bundle_time, info.tree or None))
            db.sync()
        finally:
            db.close()
        return cls(directory, trees, open_reader)

    def close(self) -> None:
        with self.lock:
            self.data.close()
            self.db.close()

    def destroy(self) -> None:
        """Discard every staged change: the overlay's directory is removed."""
        self.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _recover(self) -> None:
        """After a crash: files that were unlinked but open are gone now, and data
        files no row names (a crash between the row's deletion and theirs) too."""
        gone = [r[0] for r in self.db.all("SELECT ino FROM nodes WHERE nlink = 0")]
        if gone:
            with self.db.tx():
                for ino in gone:
                    self.db.conn.execute("DELETE FROM nodes WHERE ino = ?", (ino,))
                    self.db.conn.execute("DELETE FROM extents WHERE ino = ?", (ino,))
        self.data.keep_only({r[0] for r in self.db.all("SELECT ino FROM nodes WHERE staged = 1")})

    # -- rows and nodes --------------------------------------------------------

    def _flush(self, tx: Tx) -> None:
        for node in tx.dirty.values():
            if isinstance(node, Node) and node.persisted:
                origin = json.dumps(node.origin.to_obj()) if node.origin else None
                self.db.conn.execute(
                    "INSERT OR REPLACE INTO nodes VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (node.ino, node.kind, node.mode, node.mtime, node.ctime, node.size,
                     node.target, node.tree, origin, int(node.staged), node.base_limit,
                     node.nlink))

    def _from_row(self, row: tuple, parent: int, name: bytes) -> Node:
        ino, kind, mode, mtime, ctime, size, target, tree, origin, staged, limit, nlink = row
        entry = Entry.from_obj(json.loads(origin), "overlay") if origin else None
        return Node(ino, parent, name, kind, mode, mtime, ctime, size, target, tree, entry,
                    bool(staged), limit, nlink, persisted=True)

    def _load(self, ino: int, parent: int | None = None, name: bytes | None = None) -> Node:
        row = self.db.one("SELECT * FROM nodes WHERE ino = ?", (ino,))
        if row is None:
            raise FsError(errno.ENOENT, f"inode {ino} is gone")
        if parent is None:
            link = self.db.one("SELECT parent, name FROM dirents WHERE ino = ?", (ino,))
            parent, name = link if link else (ROOT, b"")
        return self._from_row(row, parent, name)

    def get(self, ino: int, keep: bool = True) -> Node:
        """The node with this inode number; ENOENT when it no longer exists."""
        with self.lock:
            node = self.nodes.get(ino)
            if node is None:
                node = self._load(ino)
                if keep:
                    self.nodes[ino] = node
            return node

    def _child(self, ino: int, parent: int, name: bytes) -> Node:
        node = self.nodes.get(ino)
        if node is None:
            node = self.nodes[ino] = self._load(ino, parent, name)
        return node

    def _dir(self, ino: int) -> Node:
        node = self.get(ino)
        if node.kind != DIR:
            raise FsError(errno.ENOTDIR)
        return node

    def _alloc(self) -> int:
        ino, self._next = self._next, self._next + 1
        return ino

    def _base_node(self, parent: Node, name: bytes, entry: Entry) -> Node:
        key = (parent.ino, name)
        known = self._base_names.get(key)
        if known is not None and known in self.nodes:
            return self.nodes[known]
        size = entry.size if entry.kind != DIR else 0
        node = Node(self._alloc(), parent.ino, name, entry.kind, entry.mode, entry.mtime,
                    entry.mtime, size, entry.target, entry.tree, entry,
                    base_limit=entry.size if entry.kind == FILE else 0)
        self.nodes[node.ino] = node
        self._base_names[key] = node.ino
        return node

    def _find(self, parent: Node, name: bytes) -> Node | None:
        """The node named `name` in a directory, or None. Makes base nodes as needed."""
        if parent.persisted:
            row = self.db.one("SELECT ino FROM dirents WHERE parent = ? AND name = ?",
                              (parent.ino, name))
            if row is not None:
                return None if row[0] is None else self._child(row[0], parent.ino, name)
        if parent.tree is None:
            return None
        known = self._base_names.get((parent.ino, name))
        if known is not None and known in self.nodes:
            return self.nodes[known]
        try:
            text = name.decode("utf-8")
        except UnicodeDecodeError:
            return None
        entry = self.base.lookup(parent.tree, text)
        return self._base_node(parent, name, entry) if entry is not None else None

    def _persist(self, node: Node, tx: Tx) -> None:
        """Give a node (and the directories above it) a row: it differs from the base now."""
        if node.persisted:
            return
        if node.nlink > 0:
            parent = self.get(node.parent)
            self._persist(parent, tx)
            self.db.conn.execute("INSERT OR REPLACE INTO dirents VALUES (?, ?, ?)",
                                 (parent.ino, node.name, node.ino))
        tx.touch(node)
        node.persisted = True

    def _set(self, tx: Tx, node: Node, **fields) -> None:
        tx.touch(node)
        for k, v in fields.items():
            setattr(node, k, v)

    def _link_name(self, tx: Tx, parent: Node, name: bytes, node: Node | None) -> None:
        """Point a name of a persisted directory at a node, or white it out (None)."""
        self.db.conn.execute("INSERT OR REPLACE INTO dirents VALUES (?, ?, ?)",
                             (parent.ino, name, node.ino if node else None))
        now = _now()
        self._set(tx, parent, mtime=now, ctime=now)
        key = (parent.ino, name)
        tx.after(lambda: self._base_names.pop(key, None))

    def _unlink_node(self, tx: Tx, node: Node) -> None:
        self._set(tx, node, nlink=0, ctime=_now())
        if node.persisted and node.opens == 0:
            self._delete(tx, node)

    def _delete(self, tx: Tx, node: Node) -> None:
        c = self.db.conn
        c.execute("DELETE FROM nodes WHERE ino = ?", (node.ino,))
        c.execute("DELETE FROM extents WHERE ino = ?", (node.ino,))
        c.execute("DELETE FROM dirents WHERE parent = ?", (node.ino,))
        self._set(tx, node, persisted=False)
        if node.staged:
            tx.after(lambda: self.data.drop(node.ino))

    # -- looking and listing ---------------------------------------------------

    def lookup(self, parent_ino: int, name: bytes) -> Node:
        """A name in a directory; counts one kernel lookup of the result."""
        with self.lock:
            node = self._find(self._dir(parent_ino), name)
            if node is None:
                raise FsError(errno.ENOENT)
            node.lookups += 1
            return node

    def ref(self, ino: int) -> None:
        """One more kernel lookup (a readdirplus entry the kernel took)."""
        with self.lock:
            node = self.nodes.get(ino)
            if node is not None:
                node.lookups += 1

    def forget(self, ino: int, n: int) -> None:
        with self.lock:
            node = self.nodes.get(ino)
            if node is None:
                return
            node.lookups -= n
            # Base directories stay: their children name them as parent.
            if (node.lookups <= 0 and node.opens == 0 and ino != ROOT
                    and (node.persisted or node.kind != DIR)):
                del self.nodes[ino]
                key = (node.parent, node.name)
                if self._base_names.get(key) == ino:
                    del self._base_names[key]
                self.data.forget(ino)

    def list_dir(self, ino: int, after: bytes | None = None, limit: int = 256) -> list[tuple[bytes, Node]]:
        """Up to `limit` (name, node) of a directory in name order, after `after`."""
        with self.lock:
            parent = self._dir(ino)
            out: list[tuple[bytes, Node]] = []
            base: Iterator[Entry] = iter(())
            if parent.tree is not None:
                base = self.base.entries_after(parent.tree, _text(after) if after else None)
            over = self._dirents_after(parent.ino, after) if parent.persisted else iter(())
            b, o = next(base, None), next(over, None)
            while len(out) < limit and (b is not None or o is not None):
                bname = b.name.encode("utf-8", "surrogatepass") if b is not None else None
                if o is None or (bname is not None and bname < o[0]):
                    out.append((bname, self._base_node(parent, bname, b)))
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

    def _empty(self, node: Node) -> bool:
        return not self.list_dir(node.ino, None, 1)

    def path_of(self, node: Node) -> str:
        parts = []
        while node.ino != ROOT:
            parts.append(node.name.decode("utf-8", "replace"))
            node = self.get(node.parent)
        return "/".join(reversed(parts))

    # -- namespace changes -----------------------------------------------------

    def _make(self, parent_ino: int, name: bytes, kind: str, mode: int,
              target: str | None = None) -> Node:
        with self.lock:
            parent = self._dir(parent_ino)
            _check_name(name)
            if self._find(parent, name) is not None:
                raise FsError(errno.EEXIST)
            now = _now()
            size = len(target.encode()) if target is not None else 0
            node = Node(self._alloc(), parent.ino, name, kind, mode & 0o7777, now, now, size,
                        target=target, persisted=True)
            with self.db.tx() as tx:
                self._persist(parent, tx)
                tx.dirty[id(node)] = node
                self._link_name(tx, parent, name, node)
                self.nodes[node.ino] = node
                tx.undo(lambda: self.nodes.pop(node.ino, None))
            node.lookups += 1
            return node

    def create(self, parent_ino: int, name: bytes, mode: int) -> Node:
        return self._make(parent_ino, name, FILE, mode)

    def mkdir(self, parent_ino: int, name: bytes, mode: int) -> Node:
        return self._make(parent_ino, name, DIR, mode)

    def symlink(self, parent_ino: int, name: bytes, target: bytes) -> Node:
        with self.lock:
            depth = self.path_of(self._dir(parent_ino)).count("/") + (parent_ino != ROOT)
            problem = rules.link_problem(target, depth)
            if problem:  # a bundle keeps only links inside the dataset (as upload does)
                raise FsError(problem.errno, f"symlink target {target!r:.300}: {problem}")
            return self._make(parent_ino, name, LINK, 0o777, target.decode("utf-8"))

    def unlink(self, parent_ino: int, name: bytes) -> None:
        with self.lock:
            parent = self._dir(parent_ino)
            node = self._find(parent, name)
            if node is None:
                raise FsError(errno.ENOENT)
            if node.kind == DIR:
                raise FsError(errno.EISDIR)
            with self.db.tx() as tx:
                self._persist(parent, tx)
                self._link_name(tx, parent, name, None)
                self._unlink_node(tx, node)

    def rmdir(self, parent_ino: int, name: bytes) -> None:
        with self.lock:
            parent = self._dir(parent_ino)
            node = self._find(parent, name)
            if node is None:
                raise FsError(errno.ENOENT)
            if node.kind != DIR:
                raise FsError(errno.ENOTDIR)
            if node.ino == ROOT:
                raise FsError(errno.EBUSY)
            if not self._empty(node):
                raise FsError(errno.ENOTEMPTY)
            with self.db.tx() as tx:
                self._persist(parent, tx)
                self._link_name(tx, parent, name, None)
                self._unlink_node(tx, node)

    def rename(self, old_parent: int, old_name: bytes, new_parent: int, new_name: bytes,
               flags: int = 0) -> None:
        with self.lock:
            if flags & RENAME_EXCHANGE or flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE):
                raise FsError(errno.EINVAL, "rename flags other than RENAME_NOREPLACE")
            p1, p2 = self._dir(old_parent), self._dir(new_parent)
            _check_name(new_name)
            src = self._find(p1, old_name)
            if src is None:
                raise FsError(errno.ENOENT)
            dst = self._find(p2, new_name)
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
                    up = self.get(up.parent)
            elif dst is not None and dst.kind == DIR:
                raise FsError(errno.EISDIR)
            with self.db.tx() as tx:
                self._persist(src, tx)
                self._persist(p2, tx)
                if dst is not None:
                    self._unlink_node(tx, dst)
                self._link_name(tx, p1, old_name, None)
                self._link_name(tx, p2, new_name, src)
                self._set(tx, src, parent=p2.ino, name=new_name, ctime=_now())

    def setattr(self, ino: int, mode: int | None = None, size: int | None = None,
                mtime: int | None = None) -> Node:
        with self.lock:
            node = self.get(ino)
            if size is not None and node.kind != FILE:
                raise FsError(errno.EISDIR if node.kind == DIR else errno.EINVAL)
            if size is not None and size < 0:
                raise FsError(errno.EINVAL)
            now = _now()
            with self.db.tx() as tx:
                self._persist(node, tx)
                self._set(tx, node, ctime=now)
                if mode is not None:
                    node.mode = mode & 0o7777
                if size is not None:
                    self._truncate(tx, node, size)
                    node.mtime = now
                if mtime is not None:
                    node.mtime = mtime
            return node

    def _truncate(self, tx: Tx, node: Node, size: int) -> None:
        if size < node.size:
            self.data.truncate(node.ino, size)
            node.base_limit = min(node.base_limit, size)
            if node.staged:
                ino = node.ino
                tx.after(lambda: self.data.shrink(ino, size))
        node.size = size

    # -- content ---------------------------------------------------------------

    def open(self, ino: int, truncate: bool = False) -> Node:
        with self.lock:
            node = self.get(ino)
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
            node = self.nodes.get(ino)
            if node is None:
                return
            node.opens -= 1
            if node.opens == 0 and node.nlink == 0 and node.persisted:
                with self.db.tx() as tx:
                    self._delete(tx, node)

    def write(self, ino: int, offset: int, data: bytes) -> int:
        with self.lock:
            node = self.get(ino)
            if node.kind != FILE:
                raise FsError(errno.EBADF)
            self.data.check_space(len(data))
            if not (node.persisted and node.staged):
                with self.db.tx() as tx:
                    self._persist(node, tx)
                    self._set(tx, node, staged=True)
            n = self.data.pwrite(ino, offset, data)
            if n:
                now = _now()
                with self.db.tx() as tx:
                    self.data.add_extent(ino, offset, offset + n)
                    self._set(tx, node, size=max(node.size, offset + n), mtime=now, ctime=now)
            return n

    def read(self, ino: int, offset: int, length: int, keep: bool = True) -> bytes:
        """Bytes of a file as staged: written ranges, else the base's, else zeros."""
        with self.lock:
            node = self.get(ino, keep)
            if node.kind != FILE:
                raise FsError(errno.EISDIR if node.kind == DIR else errno.EINVAL)
            end = min(offset + length, node.size)
            if offset >= end:
                return b""
            pieces = self.data.pieces(ino, offset, end, node.staged)
            limit, origin = node.base_limit, node.origin
        return self.data.assemble(ino, pieces, limit, origin)  # base bytes: outside the lock

    def changed_span(self, ino: int) -> tuple[int, int] | None:
        with self.lock:
            return self.data.changed_span(ino)

    def fsync(self, ino: int | None = None) -> None:
        """Make a file's staged data and every committed change durable. Holds the lock
        only to find the file: the syncs themselves may take a while."""
        with self.lock:
            node = self.nodes.get(ino) if ino is not None else None
            fd = self.data.dup_fd(node.ino) if node is not None and node.staged else None
        if fd is not None:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self.data.sync_names()
        self.db.sync_log()

    def space(self) -> os.statvfs_result:
        return self.data.space()

    # -- commit support --------------------------------------------------------

    def pending(self) -> dict | None:
        """A commit whose objects are stored but whose overlay was not cleared yet."""
        return self.db.get_meta("pending")

    def set_pending(self, record: dict | None) -> None:
        with self.lock:
            with self.db.tx():
                self.db.set_meta("pending", record)
            self.db.sync()

    def rebase(self, bundle: Bundle, entries: dict[int, Entry]) -> None:
        """After a commit: the bundle becomes the base, the overlay is emptied. Nodes the
        kernel knows become base nodes of their committed entries (`entries` by inode),
        so open files and cached names stay valid. Unlinked open files stay staged."""
        with self.lock:
            staged = [r[0] for r in self.db.all(
                "SELECT ino FROM nodes WHERE nlink > 0 AND staged = 1 AND ino != ?", (ROOT,))]
            info = OverlayInfo(**{**self.info.to_json(), "bundle": bundle.id, "tree": bundle.tree,
                                  "bundle_time": bundle.time})
            root = self.nodes[ROOT]
            # Nodes the kernel learnt of while the commit ran have no entry yet: by path.
            paths = {ino: self.path_of(n) for ino, n in self.nodes.items()
                     if n.persisted and n.nlink and ino != ROOT and ino not in entries}
            with self.db.tx() as tx:
                c = self.db.conn
                c.execute("DELETE FROM extents WHERE ino IN "
                          "(SELECT ino FROM nodes WHERE nlink > 0 AND ino != ?)", (ROOT,))
                c.execute("DELETE FROM nodes WHERE nlink > 0 AND ino != ?", (ROOT,))
                c.execute("DELETE FROM dirents")
                self.db.set_meta("info", info.to_json())
                self.db.set_meta("pending", None)
                self._set(tx, root, tree=bundle.tree)
            self.db.sync()
            self.info = info
            self._base_names.clear()
            for ino in staged:
                self.data.drop(ino)
            for ino, node in list(self.nodes.items()):
                if ino == ROOT or not node.persisted:
                    if node.nlink and ino != ROOT:
                        self._base_names[(node.parent, node.name)] = ino
                    continue
                if node.nlink == 0:
                    continue  # still open, still staged: its rows were kept
                entry = entries.get(ino) or self._entry_at(bundle.tree, paths.get(ino))
                if entry is None:  # not in the committed tree (cannot happen): forget it
                    del self.nodes[ino]
                    continue
                fresh = Node(ino, node.parent, node.name, entry.kind, entry.mode, entry.mtime,
                             node.ctime, entry.size if entry.kind != DIR else 0, entry.target,
                             entry.tree, entry, base_limit=entry.size if entry.kind == FILE else 0,
                             lookups=node.lookups, opens=node.opens)
                for slot in Node.__slots__:
                    setattr(node, slot, getattr(fresh, slot))
                self._base_names[(node.parent, node.name)] = ino

    def _entry_at(self, tree: str, path: str | None) -> Entry | None:
        entry = None
        for part in (path or "").split("/") if path else ():
            if tree is None:
                return None
            entry = self.base.lookup(tree, part)
            if entry is None:
                return None
            tree = entry.tree
        return entry


def _text(name: bytes) -> str:
    return name.decode("utf-8", "surrogatepass")


def _check_name(name: bytes) -> None:
    problem = rules.name_problem(name)
    if problem:  # a bundle could not hold it
        raise FsError(problem.errno, f"file name {name!r:.300}: {problem}")
