"""The writable overlay: staged changes over a base tree, surviving SIGKILL.

A writable mount shows a base tree (a bundle's, or nothing) with changes on top,
kept in a directory per mount:

    overlay.db      SQLite (schema.py): the nodes that differ from the base or lie on
                    the path to one that does, the names that differ (whiteouts for
                    deleted ones), the written ranges of staged files, the mount's
                    identity and a pending commit
    data/INO        a sparse file per staged file: written ranges only (staged.py;
                    a small file's bytes are in its extent rows instead)

`Overlay` is what the FUSE layer (fs/writable.py) talks to. Its parts: names in
namespace.py, attributes in attributes.py, content in content.py and staged.py, nodes and their
rows in nodes.py. Here: opening
and creating one, and what a commit needs (commit.py): the pending record and the
rebase onto the committed bundle.

Everything here is blocking and thread-safe (one lock); the FUSE layer calls it
from worker threads, or from the event loop when memory suffices. Errors are
FsError(errno).
"""

from __future__ import annotations

import errno
import os
from dataclasses import asdict, dataclass

from ...core.model import Bundle, Entry
from ...core.trees import TreeReader
from ..base_tree import BaseTrees
from ..vfs import ROOT, FsError
from .attributes import Attributes
from .content import Content
from .staged import OpenReader, StagedData
from .db import GROUP_SECONDS, OverlayDB
from .namespace import Namespace
from .extents import Extents
from .nodes import NodeCache, write_dirty, write_root
from .schema import SCHEMA_VERSION

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
    # The owner the bundle's entries show, and what a node without one of its own shows;
    # -1: not recorded yet (an overlay of schema 1), the mount request's then.
    owner_uid: int = -1
    owner_gid: int = -1

    def to_json(self) -> dict:
        return asdict(self)


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


class Overlay(Namespace, Attributes, Content):
    def __init__(self, directory: str, trees: TreeReader, open_reader: OpenReader):
        self.dir = directory
        self.db = OverlayDB(os.path.join(directory, DB_NAME), write_dirty, GROUP_SECONDS)
        self.trees = trees
        self.base = BaseTrees(trees)
        self.lock = self.db.lock  # so that a group is never committed halfway through a change
        self.db.migrate()  # an overlay of an older schema, written by an older datamonfs
        version = self.db.get_meta("version")
        if version != SCHEMA_VERSION:
            self.db.close()
            raise FsError(errno.EINVAL, f"overlay {directory} has format {version!r}; this "
                                        f"datamonfs reads formats up to {SCHEMA_VERSION}")
        self.info = OverlayInfo(**self.db.get_meta("info"))
        self.nodes = NodeCache(self.db, self.base)  # drops the rows of files a crash left unlinked
        self.db.flush()  # committed before their data files go
        self.data = StagedData(os.path.join(directory, DATA_DIR), Extents(self.db), trees,
                               open_reader)
        self.data.keep_only(self.nodes.staged())  # and data files no row names any more

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
                write_root(db, info.tree or None, info.bundle_time)
            db.sync()
        finally:
            db.close()
        return cls(directory, trees, open_reader)

    def close(self) -> None:
        self.db.close()  # commits the open group first (not under the lock: it joins the
        with self.lock:  # thread that commits groups, which takes it)
            self.data.close()

    def flush(self) -> None:
        """Commit the changes of the open group (they survive SIGKILL from now on)."""
        self.db.flush()

    @property
    def owner(self) -> tuple[int, int]:
        """Who the bundle's entries, and nodes without an owner of their own, belong to."""
        return self.info.owner_uid, self.info.owner_gid

    def set_owner(self, uid: int, gid: int) -> None:
        """Record the owner the bundle's entries show (when the overlay has none yet)."""
        with self.lock:
            info = OverlayInfo(**{**self.info.to_json(), "owner_uid": uid, "owner_gid": gid})
            with self.db.tx():
                self.db.set_meta("info", info.to_json())
            self.info = info

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
        so open files and cached names stay valid. Unlinked open files stay staged, and
        nodes holding what a bundle does not record (owners, several names) keep their
        rows, now on their committed entries (docs/ARCHITECTURE.md)."""
        with self.lock:
            info = OverlayInfo(**{**self.info.to_json(), "bundle": bundle.id, "tree": bundle.tree,
                                  "bundle_time": bundle.time})
            # Nodes the kernel learnt of while the commit ran have no entry yet: by path.
            paths = self.nodes.linked_paths(entries)
            kept = {}
            for ino in self.nodes.local_state():
                node = self.nodes.get(ino, keep=False)
                entry = entries.get(ino) or self.nodes.entry_at(bundle.tree,
                                                                self.nodes.path_of(node))
                if entry is not None:
                    kept[ino] = entry
            with self.db.tx() as tx:
                staged = self.nodes.rebase_rows(tx, self.nodes.get(ROOT), bundle.tree, kept)
                self.db.set_meta("info", info.to_json())
                self.db.set_meta("pending", None)
            self.db.sync()
            self.info = info
            for ino in staged:  # rows first, then data files
                self.data.drop(ino)
            self.nodes.rebase_nodes(bundle.tree, entries, paths, kept)
