"""The tree of changes a NewBundle stages over the tree it starts from.

A directory of the new bundle is a `_Dir`: the tree it starts from (None: empty) and the
names it changes, each a `_Dir`, a `Keep` (a file's or link's entry, its chunks already
stored) or None (removed). Names it does not change keep their base entry, unread, so
`describe()` is the `NewDir` that core/commit.py turns into a bundle rewriting only the
directories on the path to a change. Looking a name up reads the base tree only below
directories nobody changed.
"""

from __future__ import annotations

import time

from ..core.commit import Keep, NewDir
from ..core.model import DIR, FILE, Entry
from ..core.trees import TreeReader
from ..errors import IsADirectory, NotADirectory

_MISSING = object()


class _Dir:
    """A directory of the new bundle: the tree it starts from (None: empty) and its
    changed names: a _Dir, a Keep (a file or link's entry) or None (removed)."""

    __slots__ = ("base", "mode", "mtime", "children")

    def __init__(self, base: str | None, mode: int, mtime: int):
        self.base, self.mode, self.mtime = base, mode, mtime
        self.children: dict[str, _Dir | Keep | None] = {}

    def describe(self) -> NewDir:
        def changes():
            for name in sorted(self.children):  # str order is the bundle's (code points)
                child = self.children[name]
                yield name, child.describe() if isinstance(child, _Dir) else child
        return NewDir(self.mode, self.mtime, self.base, changes)


class Changes:
    """What a NewBundle has staged (not thread-safe: the NewBundle holds a lock)."""

    def __init__(self, trees: TreeReader, base: str | None):
        self.trees = trees
        self.root = _Dir(base, 0o755, 0)  # the root's mode and time are not recorded

    def describe(self) -> NewDir:
        return self.root.describe()

    def remove(self, names: tuple[str, ...]) -> None:
        self.descend(names[:-1]).children[names[-1]] = None

    def _base_entry(self, node: _Dir, name: str) -> Entry | None:
        return self.trees.lookup(node.base, name) if node.base else None

    def lookup(self, names: tuple[str, ...]) -> Entry | _Dir | None:
        """What the new bundle holds at a path so far (a _Dir, an Entry, or None),
        changing nothing."""
        node: _Dir | None = self.root
        tree = None
        for i, name in enumerate(names):
            last = i == len(names) - 1
            if node is not None:
                child = node.children.get(name, _MISSING)
                if child is not _MISSING:
                    if child is None:
                        return None
                    if isinstance(child, Keep):
                        return child.entry if last else None
                    node = child
                    continue
                tree = node.base
                node = None
            entry = self.trees.lookup(tree, name) if tree else None
            if entry is None or last:
                return entry
            if entry.kind != DIR:
                return None
            tree = entry.tree
        return node

    def unchanged(self, names: tuple[str, ...], entry: Entry) -> Entry | None:
        """The entry already at `names` when it holds the same bytes with the same mode:
        writing a file again unchanged keeps its time, so the tree stays the same (and a
        new bundle that changes nothing is not made)."""
        old = self.lookup(names)
        if isinstance(old, Entry) and old.kind == FILE and old.mode == entry.mode and (
                old.chunks, old.chunklist) == (entry.chunks, entry.chunklist):
            return old
        return None

    def descend(self, names: tuple[str, ...]) -> _Dir:
        """The directory at a path, made (or opened from the base) on the way."""
        node = self.root
        for i, name in enumerate(names):
            child = node.children.get(name, _MISSING)
            if isinstance(child, _Dir):
                node = child
                continue
            where = "/".join(names[:i + 1])
            if isinstance(child, Keep):
                raise NotADirectory(f"{where} is a file in the new bundle; remove it first")
            entry = self._base_entry(node, name) if child is _MISSING else None
            if entry is None:
                new = _Dir(None, 0o755, time.time_ns())
            elif entry.kind == DIR:
                new = _Dir(entry.tree, entry.mode, entry.mtime)
            else:
                raise NotADirectory(f"{where} is a file in the new bundle; remove it first")
            node.children[name] = new
            node = new
        return node

    def place(self, names: tuple[str, ...], change: Keep) -> None:
        parent = self.descend(names[:-1])
        name = names[-1]
        child = parent.children.get(name, _MISSING)
        if child is _MISSING:
            child = self._base_entry(parent, name)
        if child is not None and is_dir(child):
            raise IsADirectory(f"{'/'.join(names)} is a directory in the new bundle; remove "
                               "it first to put a file there")
        parent.children[name] = change

    def place_dir(self, names: tuple[str, ...], node: _Dir) -> None:
        if not names:
            node.mode, node.mtime = self.root.mode, self.root.mtime
            self.root = node
            return
        self.descend(names[:-1]).children[names[-1]] = node

    def put_tree(self, names: tuple[str, ...], tree: str, mode: int, mtime: int) -> None:
        """A stored directory tree at `names`: placed whole where nothing is (or over the
        root of a bundle started empty), else its entries written over the directory
        there, one by one."""
        found = self.lookup(names)
        if found is None or (not names and self.root.base is None and not self.root.children):
            self.place_dir(names, _Dir(tree, mode, mtime))
        elif not is_dir(found):
            raise NotADirectory(f"{'/'.join(names)} is a file in the new bundle; remove it "
                                "first to put a directory there")
        else:
            for entry in self.trees.entries(tree):
                if entry.kind == DIR:
                    self.put_tree((*names, entry.name), entry.tree, entry.mode, entry.mtime)
                else:
                    self.place((*names, entry.name), Keep(entry))


def is_dir(found: "_Dir | Keep | Entry") -> bool:
    if isinstance(found, Keep):
        found = found.entry
    return isinstance(found, _Dir) or found.kind == DIR
