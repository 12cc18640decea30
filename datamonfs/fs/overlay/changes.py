"""What an overlay changed: the description core.commit builds a bundle from, and
the list `datamonfs status` shows.

Both walk only the overlay's rows: a directory without rows under it is its
base tree, untouched (`Keep`), whatever its size. Rows are read a batch at a
time in name order, so a huge overlay is never held in memory.
"""

from __future__ import annotations

from functools import partial
from typing import Iterator

from ...core.commit import Change, Keep, NewDir, NewFile, NewLink
from ...core.model import DIR, FILE, LINK, Entry
from ..vfs import ROOT
from .nodes import Node
from .overlay import Overlay

BATCH = 512


def _children(ov: Overlay, parent: int) -> Iterator[tuple[bytes, Node | None]]:
    """(name, node as stored or None for a whiteout) of a directory's rows, in name order."""
    last = b""
    while True:
        with ov.lock:
            rows = ov.nodes.children(parent, last, BATCH)
        yield from rows
        if len(rows) < BATCH:
            return
        last = rows[-1][0]


def _has_rows(ov: Overlay, parent: int) -> bool:
    with ov.lock:
        return ov.nodes.has_children(parent)


# -- the commit description ------------------------------------------------------


def describe(ov: Overlay) -> NewDir | Keep:
    """The overlay's tree as changes to its base tree, for core.commit."""
    root = ov.get(ROOT)
    if not _has_rows(ov, ROOT):
        return Keep(Entry("", DIR, root.mode, root.mtime, 0, tree=root.tree)) if root.tree else \
            NewDir(root.mode, root.mtime, None, lambda: (), ROOT)
    return NewDir(root.mode, root.mtime, root.tree, partial(_changes, ov, ROOT), ROOT)


def _changes(ov: Overlay, parent: int) -> Iterator[tuple[str, Change | None]]:
    for name, node in _children(ov, parent):
        yield name.decode("utf-8"), None if node is None else _change(ov, node)


def _change(ov: Overlay, node: Node) -> Change:
    ino, kind, mode, mtime, origin = node.ino, node.kind, node.mode, node.mtime, node.origin
    same_meta = origin is not None and origin.kind == kind and (
        origin.mode, origin.mtime, origin.xattrs) == (mode, mtime, node.xattrs)
    if kind == DIR:
        if same_meta and not _has_rows(ov, ino):
            return Keep(origin, ino)  # renamed or only on the path to a change: same tree
        return NewDir(mode, mtime, node.tree, partial(_changes, ov, ino), ino, node.xattrs)
    if kind == LINK:
        if same_meta and origin.target == node.target:
            return Keep(origin, ino)
        return NewLink(node.target, mode, mtime, ino)
    base = origin if origin is not None and origin.kind == FILE else None
    changed = []
    span = ov.changed_span(ino) if node.staged else None
    if span:
        changed.append(span)
    if base is not None and node.base_limit < node.size:
        changed.append((node.base_limit, node.size))  # reads as zeros where the base had bytes
    if same_meta and not changed and node.size == origin.size:
        return Keep(origin, ino)
    read = partial(ov.read, ino, keep=False)
    return NewFile(mode, mtime, node.size, lambda off, n: read(off, n), base, tuple(changed), ino,
                   node.xattrs)


# -- status --------------------------------------------------------------------


ADDED, MODIFIED, DELETED = "added", "modified", "deleted"


def status(ov: Overlay) -> Iterator[dict]:
    """Staged changes in path order: {"path", "change", "kind", "size"}. A directory
    added or deleted whole is one line (path ending in "/") plus, when added, what
    was put in it; a moved entry is deleted at its old path and added at its new one."""
    root = ov.get(ROOT)
    yield from _status_dir(ov, ROOT, root.tree, "")


def _line(path: str, change: str, kind: str, size: int) -> dict:
    return {"path": path + ("/" if kind == DIR else ""), "change": change, "kind": kind,
            "size": size}


def _status_dir(ov: Overlay, ino: int, tree: str | None, prefix: str) -> Iterator[dict]:
    for name, node in _children(ov, ino):
        text = name.decode("utf-8")
        path = prefix + text
        was = ov.base.lookup(tree, text) if tree else None
        if node is None:
            if was is not None:
                yield _line(path, DELETED, was.kind, was.size)
            continue
        kind, size = node.kind, node.size
        # The same entry under this name (a hard link's origin may carry another name).
        if node.origin is not None and node.origin.same_as(was) and kind == was.kind:
            if kind == DIR:
                if (node.mode, node.xattrs) != (was.mode, was.xattrs):
                    yield _line(path, MODIFIED, DIR, 0)
                yield from _status_dir(ov, node.ino, node.tree, path + "/")
            elif isinstance(_change(ov, node), Keep) is False:
                yield _line(path, MODIFIED, kind, size)
            continue
        if was is not None:
            yield _line(path, DELETED, was.kind, was.size)
        yield _line(path, ADDED, kind, size if kind != DIR else 0)
        if kind == DIR:
            yield from _status_dir(ov, node.ino, node.tree, path + "/")
