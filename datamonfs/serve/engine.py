"""What the server asks of the store, as plain blocking calls (run in worker threads).

This is the server's one adapter over the engine the CLI and the mounts use: the
process's block cache (`cached_repository`), the Repository, the tree reader and the
cache's FileReader. Routes never touch the core directly, so when the Python API
(datamonfs.sdk, issue 16) covers a call, only this module changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from ..cache import FileReader, cached_repository
from ..core.config import Config
from ..core.diff import Change, diff_bundles
from ..core.encoding import VERSION, address, encode
from ..core.model import DIR, FILE, Bundle, Entry, RefRecord, RepoInfo
from ..core.repository import BRANCH, LABEL, Author, Repository
from ..core.trees import BadEntry
from ..errors import DatamonError, NotFound

MAX_PAGE = 1000  # entries, bundles or changes one request may ask for


class NotADirectory(DatamonError):
    code = "not_a_directory"


class NotAFile(DatamonError):
    code = "not_a_file"


@dataclass(frozen=True)
class Page:
    items: list
    next: str | None  # the cursor of the next page, None on the last
    total: int | None = None


class Engine:
    """One per server process: one block cache, one store."""

    def __init__(self, cfg: Config, store=None):
        self.cfg = cfg
        self.repo, self.reader = cached_repository(cfg, store)

    @property
    def repository(self) -> Repository:
        return self.repo

    def close(self) -> None:
        self.reader.close()

    # -- repos, bundles, refs ------------------------------------------------

    def repos(self) -> list[RepoInfo]:
        return self.repo.list_repos()

    def get_repo(self, name: str) -> RepoInfo:
        return self.repo.get_repo(name)

    def bundles(self, repo: str, branch: str | None, offset: int, limit: int,
                author: str | None = None, grep: str | None = None,
                since: int | None = None, until: int | None = None) -> Page:
        found = [b for b in self.repo.list_bundles(repo, branch)
                 if _matches(b, author, grep, since, until)]
        items = found[offset:offset + limit]
        more = offset + limit < len(found)
        return Page(items, str(offset + limit) if more else None, len(found))

    def resolve(self, repo: str, ref: str) -> Bundle:
        return self.repo.resolve(f"{repo}:{ref}")

    def refs(self, repo: str, kind: str) -> list[RefRecord]:
        return self.repo.list_refs(repo, kind)

    def decorations(self, repo: str) -> dict[str, dict[str, list[str]]]:
        """Bundle id -> the branches and labels naming it now."""
        names: dict[str, dict[str, list[str]]] = {}
        for kind, key in ((BRANCH, "branches"), (LABEL, "labels")):
            for r in self.repo.list_refs(repo, kind):
                names.setdefault(r.bundle, {"branches": [], "labels": []})[key].append(r.name)
        return names

    def set_label(self, repo: str, name: str, ref: str, author: Author
                  ) -> tuple[RefRecord | None, RefRecord | None, Bundle]:
        bundle = self.resolve(repo, ref)
        before, record = self.repo.set_label(repo, name, bundle.id, author)
        return before, record, bundle

    # -- inside a bundle -----------------------------------------------------

    def stat(self, bundle: Bundle, path: str) -> Entry | None:
        """The entry at `path` ('' is the root, a directory entry made up from the
        bundle record), or None."""
        if not path:
            return Entry("", DIR, 0o755, bundle.time, bundle.bytes, tree=bundle.tree,
                         files=bundle.files)
        return self.repo.lookup(bundle, path)

    def entry(self, bundle: Bundle, path: str) -> Entry:
        entry = self.stat(bundle, path)
        if entry is None:
            raise NotFound(f"no file or directory {path!r} in bundle {bundle.id[:12]}")
        return entry

    def listdir(self, bundle: Bundle, path: str, after: str | None, limit: int) -> Page:
        """Entries of the directory at `path` in name order, after the name `after`:
        the page index and the pages holding them are read, never the whole
        directory (a 100,000-file directory is about 100 pages)."""
        entry = self.entry(bundle, path)
        if entry.kind != DIR:
            raise NotADirectory(f"{path!r} is not a directory")
        trees = self.repo.trees
        d = trees.directory(entry.tree, where=path or "/")
        total = sum(p.count for p in d.pages) if d.pages else len(d.entries)
        if d.pages:
            firsts = [p.first for p in d.pages]
            i = max(_bisect_right(firsts, after) - 1, 0) if after is not None else 0
            pages = (trees.page(d, j) for j in range(i, len(d.pages)))
        else:
            pages = iter([list(d.entries)])
        items: list[Entry] = []
        for page in pages:
            for e in page:
                if after is not None and e.name <= after:
                    continue
                if len(items) == limit:
                    return Page(items, items[-1].name, total)
                if not isinstance(e, BadEntry):
                    items.append(e)
        return Page(items, None, total)

    def open_file(self, bundle: Bundle, path: str) -> tuple[Entry, FileReader]:
        entry = self.entry(bundle, path)
        if entry.kind != FILE:
            raise NotAFile(f"{path!r} is not a file" + (" (a directory)" if entry.kind == DIR
                                                        else " (a symlink)"))
        return entry, FileReader(self.reader, self.repo.trees.chunks(entry))

    def lineage(self, bundle: Bundle) -> dict:
        """{"up": the bundles it records as inputs, "down": those made from it, or None
        when that is not known}; an input missing from the store is {"missing": True}."""
        up = []
        for i in bundle.inputs:
            try:
                b = self.repo.get_bundle(i.repo, i.bundle)
                up.append({"repo": b.repo, "id": b.id, "time": b.time, "message": b.message})
            except NotFound:
                up.append({"repo": i.repo, "id": i.bundle, "missing": True})
        return {"up": up, "down": None}

    def create_bundle(self, repo, branch, message, label, author, replace, members, source):
        raise DatamonError("uploads are not ready yet")

    def diff(self, old: Bundle, new: Bundle) -> Iterator[Change]:
        return diff_bundles(self.repo, old, new)


def content_address(entry: Entry) -> str:
    """A file's content address, for ETags: the address of its chunk list as a
    `chunks` object (docs/FORMAT.md §5.4), also when the list is inline, so equal bytes
    cut the same way have one address whatever the bundle; read from the entry alone."""
    if entry.chunklist:
        return entry.chunklist
    return address(encode({"v": VERSION, "type": "chunks",
                           "chunks": [list(c) for c in entry.chunks or ()]}))


def _bisect_right(names: list[str], name: str) -> int:
    import bisect

    return bisect.bisect_right(names, name)


def _matches(b: Bundle, author: str | None, grep: str | None, since: int | None,
             until: int | None) -> bool:
    if author and author.lower() not in f"{b.author_name} <{b.author_email}>".lower():
        return False
    if grep and grep.lower() not in b.message.lower():
        return False
    if since is not None and b.time < since:
        return False
    return until is None or b.time <= until
