"""What the server asks of the store, as plain blocking calls (run in worker threads).

A thin layer over the Python API (datamonfs.sdk, docs/PYTHON.md): one `Store` per
process, so one block cache and one store client serve every request, as they do the
CLI's and the mounts' reads. What is here and not in the API: pages that say whether
more follow, and who a write is recorded as (the token's author, per request).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..cache import FileReader
from ..core.repository import Author
from ..core.stores import StoreSpec
from ..sdk import Bundle, FileInfo, Lineage, NewBundle, Ref, Repo, Store
from ..sdk import open as open_store

MAX_PAGE = 1000  # entries, bundles or changes one request may ask for


@dataclass(frozen=True)
class Page:
    items: list
    next: str | None  # the cursor of the next page, None on the last
    total: int | None = None


class Engine:
    """One per server process."""

    def __init__(self, store: Store):
        self.store = store

    @classmethod
    def open(cls, config=None, spec: StoreSpec | None = None) -> "Engine":
        return cls(open_store(spec, config=config))

    def close(self) -> None:
        self.store.close()

    # -- repos, bundles, refs ------------------------------------------------

    def repos(self) -> list[Repo]:
        return self.store.repos()

    def repo(self, name: str) -> Repo:
        return self.store.repo(name)

    def bundles(self, repo: str, offset: int, limit: int, **filters) -> Page:
        """Newest first, filtered as Repo.bundles; one more than asked is read to know
        whether another page follows."""
        found = self.store.repo(repo).bundles(offset=offset, limit=limit + 1, **filters)
        more = len(found) > limit
        return Page(found[:limit], str(offset + limit) if more else None)

    def bundle(self, repo: str, ref: str) -> Bundle:
        return self.store.bundle(f"{repo}:{ref}")

    def refs(self, repo: str, kind: str) -> list[Ref]:
        r = self.store.repo(repo)
        return r.labels() if kind == "label" else r.branches()

    def decorations(self, repo: str) -> dict[str, dict[str, list[str]]]:
        return self.store.repo(repo).decorations()

    def set_label(self, repo: str, name: str, ref: str, author: Author
                  ) -> tuple[str | None, bool, Bundle]:
        """(the bundle the label named before, whether it moved, the bundle it names)."""
        bundle = self.bundle(repo, ref)
        # Repo.set_label records the Store's author; a server records the token's.
        before, record = self.store.repository.set_label(repo, name, bundle.id, author)
        return (before.bundle if before else None), record is not None, bundle

    # -- inside a bundle -----------------------------------------------------

    def listdir(self, bundle: Bundle, path: str, after: str | None, limit: int) -> Page:
        """A page of a directory in name order after the name `after` (a 100,000-entry
        directory is read a page of the tree at a time), and its number of entries."""
        found = bundle.ls(path, limit=limit + 1, after=after)
        items = found[:limit]
        total = self.store.repository.trees.count(bundle.stat(path).address)
        return Page(items, items[-1].name if len(found) > limit else None, total)

    def open_file(self, bundle: Bundle, path: str) -> tuple[FileInfo, FileReader]:
        return bundle.open_reader(path)

    def diff(self, old: Bundle, new: Bundle, offset: int, limit: int) -> Page:
        changes, more = [], False
        for i, change in enumerate(old.diff(new)):
            if i >= offset + limit:
                more = True
                break
            if i >= offset:
                changes.append(change)
        return Page(changes, str(offset + limit) if more else None)

    def lineage(self, bundle: Bundle, depth: int | None) -> Lineage:
        return self.store.lineage(bundle, depth=depth)

    def create_bundle(self, repo: str, branch: str, message: str, label: str | None,
                      author: Author, replace: bool, put: Callable[[NewBundle, object], None],
                      body) -> tuple[Bundle, bool]:
        """A new bundle on `branch` holding what an upload sends (`put(nb, body)`): added
        to the head's tree, or instead of it (`replace`). Nothing is recorded unless all
        of it is taken (NewBundle leaves nothing named when it raises). (the bundle,
        whether it is new): an upload that changes nothing makes none, as the CLI's."""
        nb = self.store.repo(repo).new_bundle(branch=branch, message=message, label=label,
                                              empty=replace)
        nb.author = author  # the token's, not the server's (see routes_write)
        with nb:
            put(nb, body)
        return nb.bundle, nb.created
