"""Questions about a repo's bundles: which match a filter, and the history of one path.

Bundle records are small and hold who, when and why, so filtering reads every record of
the repo (or of a branch's or label's log) once; there is no index. The history of a path
follows first parents from a bundle and compares the path's entry in each bundle with its
parent's: the walk down the path stops at the first directory whose tree address is the
same in both (equal subtrees are skipped by address), so an unchanged path costs one
lookup per bundle, whatever the bundle's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from ..errors import NotFound
from .model import DIR, Bundle, Entry
from .repository import BRANCH, LABEL, Repository
from .trees import check_placement

ADDED, MODIFIED, DELETED = "added", "modified", "deleted"


@dataclass(frozen=True)
class BundleFilter:
    """What `bundle list` and `Repo.bundles` filter on; every given part must match.

    author: text in "NAME <EMAIL>", ignoring case. since/until: times in ns since the
    epoch, inclusive. grep: text in the message, ignoring case (plain text, not a regular
    expression, so a filter from an untrusted caller costs linear time).
    """

    author: str | None = None
    since: int | None = None
    until: int | None = None
    grep: str | None = None

    def matches(self, b: Bundle) -> bool:
        if self.author and self.author.casefold() not in (
                f"{b.author_name} <{b.author_email}>".casefold()):
            return False
        if self.since is not None and b.time < self.since:
            return False
        if self.until is not None and b.time > self.until:
            return False
        return not self.grep or self.grep.casefold() in b.message.casefold()


def find_bundles(repo: Repository, repo_name: str, branch: str | None = None,
                 label: str | None = None, where: BundleFilter = BundleFilter()) -> list[Bundle]:
    """Bundles of a repo, newest first: all of them, or those a branch's or a label's log
    has pointed at (both given: those in both logs), that match `where`."""
    if branch is None and label is None:
        bundles = repo.list_bundles(repo_name)
    else:
        repo.get_repo(repo_name)
        ids: set[str] | None = None
        for kind, name in ((BRANCH, branch), (LABEL, label)):
            if name is None:
                continue
            log = repo.ref_log(repo_name, kind, name)
            if not log:
                raise NotFound(f"no {kind} {name!r} in repo {repo_name!r}; see "
                               f"'datamonfs {kind} list {repo_name}'")
            found = {r.bundle for r in log}
            ids = found if ids is None else ids & found
        bundles = sorted((repo.get_bundle(repo_name, i) for i in ids or ()),
                         key=lambda b: (b.time, b.id), reverse=True)
    return [b for b in bundles if where.matches(b)]


@dataclass(frozen=True)
class PathChange:
    """A bundle in which a path was added, modified or deleted, against its first parent."""

    bundle: Bundle
    change: str
    entry: Entry | None  # the path's entry in `bundle` (None: deleted)


def path_history(repo: Repository, start: Bundle, names: tuple[str, ...],
                 limit: int | None = None) -> Iterator[PathChange]:
    """The bundles, newest first along first parents from `start`, whose entry at the
    path (names) differs from their parent's: added, modified (a file's content, mode or
    time, a link's target, anything below a directory) or deleted."""
    path = "/".join(names)
    bundle, found = start, 0
    while bundle is not None and (limit is None or found < limit):
        parent = repo.get_bundle(bundle.repo, bundle.parents[0]) if bundle.parents else None
        change = _compare(repo, bundle, parent, names, path)
        if change is not None:
            found += 1
            yield change
        bundle = parent


def _compare(repo: Repository, bundle: Bundle, parent: Bundle | None, names: tuple[str, ...],
             path: str) -> PathChange | None:
    new_tree, old_tree = bundle.tree, parent.tree if parent else None
    new = old = None
    for i, name in enumerate(names):
        if new_tree == old_tree:
            return None  # the same subtree holds the path in both: unchanged
        new = repo.trees.lookup(new_tree, name) if new_tree else None
        old = repo.trees.lookup(old_tree, name) if old_tree else None
        last = i == len(names) - 1
        new_tree = new.tree if new is not None and new.kind == DIR and not last else None
        old_tree = old.tree if old is not None and old.kind == DIR and not last else None
        if not last and new_tree is None and old_tree is None:
            return None  # the path's directory is in neither
    if not names:
        return None if new_tree == old_tree else PathChange(bundle, MODIFIED, None)
    if new is not None:
        check_placement(new, path)
    if new == old:
        return None
    if new is None:
        return PathChange(bundle, DELETED, None)
    return PathChange(bundle, ADDED if old is None else MODIFIED, new)
