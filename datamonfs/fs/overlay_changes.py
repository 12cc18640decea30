"""What an overlay changed: the description core.commit builds a bundle from, and
the list `datamonfs status` shows.

Both walk only the overlay's rows: a directory without rows under it is its
base tree, untouched (`Keep`), whatever its size. Rows are read a batch at a
time in name order, so a huge overlay is never held in memory.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Iterator

from ..core.commit import Keep, NewDir, NewFile, NewLink, Node as Change
from ..core.model import DIR, FILE, LINK, Entry
from .overlay import ROOT, Overlay

BATCH = 512
_COLUMNS = "n.ino, n.kind, n.mode, n.mtime, n.size, n.target, n.tree, n.origin, n.staged, n.base_limit"


def _children(ov: Overlay, parent: int) -> Iterator[tuple[bytes, tuple | None]]:
    """(name, row or None for a whiteout) of a directory's rows, in name order."""
    last = b""
    while True:
        with ov.lock:
            rows = ov.db.all(f"SELECT d.name, d.ino IS NULL, {_COLUMNS} FROM dirents d "
                             "LEFT JOIN nodes n ON n.ino = d.ino WHERE d.parent = ? AND d.name > ? "
                             f"ORDER BY d.name LIMIT {BATCH}", (parent, last))
        for name, whiteout, *row in rows:
            yield name, None if whiteout else tuple(row)
        if len(rows) < BATCH:
            return
        last = rows[-1][0]


def _has_rows(ov: Overlay, parent: int) -> bool:
    with ov.lock:
        return ov.db.one("SELECT 1 FROM dirents WHERE parent = ? LIMIT 1", (parent,)) is not None


def _origin(raw: str | None) -> Entry | None:
    return Entry.from_obj(json.loads(raw), "overlay") if raw else None


# -- the commit description ------------------------------------------------------


def describe(ov: Overlay) -> NewDir | Keep:
    """The overlay's tree as changes to its base tree, for core.commit."""
    root = ov.get(ROOT)
    if not _has_rows(ov, ROOT):
        return Keep(Entry("", DIR, root.mode, root.mtime, 0, tree=root.tree)) if root.tree else \
            NewDir(root.mode, root.mtime, None, lambda: (), ROOT)
    return NewDir(root.mode, root.mtime, root.tree, partial(_changes, ov, ROOT), ROOT)


def _changes(ov: Overlay, parent: int) -> Iterator[tuple[str, Change | None]]:
    for name, row in _children(ov, parent):
        yield name.decode("utf-8"), None if row is None else _change(ov, row)


def _change(ov: Overlay, row: tuple) -> Change:
    ino, kind, mode, mtime, size, target, tree, origin_raw, staged, base_limit = row
    origin = _origin(origin_raw)
    same_meta = origin is not None and origin.kind == kind and (origin.mode, origin.mtime) == (mode, mtime)
    if kind == DIR:
        if same_meta and not _has_rows(ov, ino):
            return Keep(origin, ino)  # renamed or only on the path to a change: same tree
        return NewDir(mode, mtime, tree, partial(_changes, ov, ino), ino)
    if kind == LINK:
        if same_meta and origin.target == target:
            return Keep(origin, ino)
        return NewLink(target, mode, mtime, ino)
    base = origin if origin is not None and origin.kind == FILE else None
    changed = []
    span = ov.changed_span(ino) if staged else None
    if span:
        changed.append(span)
    if base is not None and base_limit < size:
        changed.append((base_limit, size))  # reads as zeros where the base had bytes
    if same_meta and not changed and size == origin.size:
        return Keep(origin, ino)
    read = partial(ov.read, ino, keep=False)
    return NewFile(mode, mtime, size, lambda off, n: read(off, n), base, tuple(changed), ino)


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
    for name, row in _children(ov, ino):
        text = name.decode("utf-8")
        path = prefix + text
        was = ov.base.lookup(tree, text) if tree else None
        if row is None:
            if was is not None:
                yield _line(path, DELETED, was.kind, was.size)
            continue
        child, kind, mode, mtime, size, target, ctree, origin_raw, staged, base_limit = row
        origin = _origin(origin_raw)
        if was is not None and origin == was and kind == was.kind:
            if kind == DIR:
                if mode != was.mode:
                    yield _line(path, MODIFIED, DIR, 0)
                yield from _status_dir(ov, child, ctree, path + "/")
            elif isinstance(_change(ov, row), Keep) is False:
                yield _line(path, MODIFIED, kind, size)
            continue
        if was is not None:
            yield _line(path, DELETED, was.kind, was.size)
        yield _line(path, ADDED, kind, size if kind != DIR else 0)
        if kind == DIR:
            yield from _status_dir(ov, child, ctree, path + "/")
