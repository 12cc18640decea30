"""Differences between two bundle trees, skipping subtrees that are equal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from ..errors import IntegrityError
from . import rules
from .model import DIR, Bundle, Entry
from .repository import Repository
from .trees import Claims, check_placement, claims_of

ADDED, DELETED, MODIFIED = "added", "deleted", "modified"


@dataclass(frozen=True)
class Change:
    path: str
    change: str
    old_size: int | None
    new_size: int | None

    def to_json(self) -> dict:
        return {"path": self.path, "change": self.change,
                "old_size": self.old_size, "new_size": self.new_size}


def diff_bundles(repo: Repository, old: Bundle, new: Bundle) -> Iterator[Change]:
    """What changed from bundle `old` to bundle `new`, checked like any walk of them
    (core.rules: totals, depth, links)."""
    budget = rules.WalkBudget(old.files + new.files)
    return _Diff(repo, budget).trees(old.tree, new.tree, "", (old.files, old.bytes),
                                     (new.files, new.bytes))


def diff_trees(repo: Repository, old: str | None, new: str | None) -> Iterator[Change]:
    """Files and symlinks added, deleted or modified between two trees, in path order
    (the trees' own totals unchecked: no bundle says what they should be)."""
    return _Diff(repo, rules.WalkBudget(0)).trees(old, new, "", None, None)


class _Diff:
    def __init__(self, repo: Repository, budget: rules.WalkBudget):
        self.repo = repo
        self.budget = budget

    def trees(self, old: str | None, new: str | None, prefix: str, old_claims: Claims | None,
              new_claims: Claims | None) -> Iterator[Change]:
        if old == new:
            return
        problem = self.budget.directory()
        if problem:
            raise IntegrityError(f"{prefix or '/'}: {problem}")
        where = prefix or "/"
        trees = self.repo.trees
        old_entries = trees.entries(old, where, old_claims) if old else iter(())
        new_entries = trees.entries(new, where, new_claims) if new else iter(())
        a, b = next(old_entries, None), next(new_entries, None)
        while a or b:
            if b is None or (a is not None and a.name < b.name):
                yield from self.side(a, prefix, DELETED)
                a = next(old_entries, None)
            elif a is None or b.name < a.name:
                yield from self.side(b, prefix, ADDED)
                b = next(new_entries, None)
            else:
                yield from self.pair(a, b, prefix)
                a, b = next(old_entries, None), next(new_entries, None)

    def side(self, entry: Entry, prefix: str, change: str) -> Iterator[Change]:
        path = prefix + entry.name
        check_placement(entry, path)
        if entry.kind == DIR:
            if change == DELETED:
                yield from self.trees(entry.tree, None, path + "/", claims_of(entry), None)
            else:
                yield from self.trees(None, entry.tree, path + "/", None, claims_of(entry))
        else:
            size = entry.size
            yield Change(path, change, size if change == DELETED else None,
                         size if change == ADDED else None)

    def pair(self, a: Entry, b: Entry, prefix: str) -> Iterator[Change]:
        path = prefix + a.name
        check_placement(a, path)
        check_placement(b, path)
        if a.kind == DIR and b.kind == DIR:
            yield from self.trees(a.tree, b.tree, path + "/", claims_of(a), claims_of(b))
        elif a.kind == DIR or b.kind == DIR:
            yield from self.side(a, prefix, DELETED)
            yield from self.side(b, prefix, ADDED)
        elif not self.repo.trees.same(a, b):
            yield Change(path, MODIFIED, a.size, b.size)
