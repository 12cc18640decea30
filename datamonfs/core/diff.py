"""Differences between two bundle trees, skipping subtrees that are equal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from .model import DIR, Entry
from .repository import Repository

ADDED, REMOVED, MODIFIED = "added", "removed", "modified"


@dataclass(frozen=True)
class Change:
    path: str
    change: str
    old_size: int | None
    new_size: int | None

    def to_json(self) -> dict:
        return {"path": self.path, "change": self.change,
                "old_size": self.old_size, "new_size": self.new_size}


def diff_trees(repo: Repository, old: str | None, new: str | None, prefix: str = "") -> Iterator[Change]:
    """Files and symlinks added, removed or modified between two trees, in path order."""
    if old == new:
        return
    old_entries = repo.trees.entries(old) if old else iter(())
    new_entries = repo.trees.entries(new) if new else iter(())
    a, b = next(old_entries, None), next(new_entries, None)
    while a or b:
        if b is None or (a is not None and a.name < b.name):
            yield from _side(repo, a, prefix, REMOVED)
            a = next(old_entries, None)
        elif a is None or b.name < a.name:
            yield from _side(repo, b, prefix, ADDED)
            b = next(new_entries, None)
        else:
            yield from _pair(repo, a, b, prefix)
            a, b = next(old_entries, None), next(new_entries, None)


def _side(repo: Repository, entry: Entry, prefix: str, change: str) -> Iterator[Change]:
    path = prefix + entry.name
    if entry.kind == DIR:
        old, new = (entry.tree, None) if change == REMOVED else (None, entry.tree)
        yield from diff_trees(repo, old, new, path + "/")
    else:
        size = entry.size
        yield Change(path, change, size if change == REMOVED else None, size if change == ADDED else None)


def _pair(repo: Repository, a: Entry, b: Entry, prefix: str) -> Iterator[Change]:
    path = prefix + a.name
    if a.kind == DIR and b.kind == DIR:
        yield from diff_trees(repo, a.tree, b.tree, path + "/")
    elif a.kind == DIR or b.kind == DIR:
        yield from _side(repo, a, prefix, REMOVED)
        yield from _side(repo, b, prefix, ADDED)
    elif a != b:
        yield Change(path, MODIFIED, a.size, b.size)
