"""A directory's entries by position: its page index, and a bounded cache of parsed pages.

Inode numbers and readdir offsets are positions in a directory (see inodes.py), so
the file system needs "entry number i" and "where is this name" without reading a
whole directory: a tree object is either one leaf page or an index of pages with
their first names and entry counts. Everything here that touches the store is
blocking and runs in a worker thread; the cache itself is used on the trio thread.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import trio

from ..core import rules
from ..core.model import Entry
from ..core.trees import BadEntry, Claims, Directory, TreeReader
from ..errors import IntegrityError
from .loading import LoadingCache


@dataclass(frozen=True, slots=True)
class Layout:
    """Where a directory's entries live: its pages, their first names and positions."""

    directory: Directory
    addrs: tuple[str, ...]  # of the pages (a single page's is the tree's)
    firsts: tuple[str, ...]  # empty for a single page (nothing to bisect)
    starts: tuple[int, ...]  # position of each page's first entry
    total: int

    @property
    def tree(self) -> str:
        return self.directory.addr

    def page_of(self, index: int) -> int:
        return bisect.bisect_right(self.starts, index) - 1

    def page_for_name(self, name: str) -> int:
        if not self.firsts:
            return 0
        return bisect.bisect_right(self.firsts, name) - 1


@dataclass(frozen=True, slots=True)
class Page:
    entries: list[Entry | BadEntry]
    names: list[str]

    def find(self, name: str) -> int | None:
        i = bisect.bisect_left(self.names, name)
        return i if i < len(self.names) and self.names[i] == name else None


def _weight(page: Page) -> int:
    # Entries with inline chunk lists are the big ones; count each reference.
    return sum(map(_entry_weight, page.entries))


def _entry_weight(e: Entry | BadEntry) -> int:
    listed = getattr(e, "chunks", None) or getattr(e, "unchecked", None) or ()
    if isinstance(listed, dict):  # unchecked, of format 2: {"chunks": [...], "packs": [...]}
        listed = listed.get("chunks")
    return 1 + (len(listed) if isinstance(listed, (list, tuple)) else 0)


class PageReader:
    """Blocking reads of layouts and pages, parsed and checked by core's TreeReader.

    `lenient` (a read-only mount): an entry whose fields are bad is kept as a
    BadEntry, so that only it fails, not its whole directory.
    """

    def __init__(self, trees: TreeReader, lenient: bool = False):
        self.trees = trees
        self.lenient = lenient

    def layout(self, tree: str, claims: Claims | None = None) -> tuple[Layout, Page | None]:
        """The page index of a tree; for a single-leaf tree also its only page, whose
        totals are checked against `claims` (what the directory's entry says is below)."""
        d = self.trees.directory(tree, self.lenient)
        if not d.pages:
            page = self._page(list(d.entries))
            if claims is not None:
                _check_claims(d, page.entries, claims)
            return Layout(d, (tree,), (), (0,), len(page.entries)), page
        starts, total = [], 0
        for ref in d.pages:
            starts.append(total)
            total += ref.count
        return Layout(d, tuple(p.addr for p in d.pages), tuple(p.first for p in d.pages),
                      tuple(starts), total), None

    def page(self, layout: Layout, i: int) -> Page:
        return self._page(self.trees.page(layout.directory, i, self.lenient))

    @staticmethod
    def _page(entries: list) -> Page:
        return Page(entries, [e.name for e in entries])


def _check_claims(d, entries: list, claims: Claims) -> None:
    """A directory holds what its entry says; with bad entries (of unknown size) among
    them, at most that."""
    totals = rules.Totals()
    bad = False
    for e in entries:
        if isinstance(e, BadEntry):
            bad = True
        else:
            totals.add(e.kind, e.size, e.files)
    if (totals.files > claims[0] or totals.bytes > claims[1]) if bad else \
            (totals.files, totals.bytes) != claims:
        raise IntegrityError(f"{d.where}: the directory holds {totals.files} files and "
                             f"{totals.bytes} bytes, but its entry claims {claims[0]} and "
                             f"{claims[1]}")


class PageCache:
    """Parsed pages by address, least recently used evicted past `max_weight`, and the
    layouts of directories by tree address (and the totals their entry claims).

    Pages are content-addressed, so one cached page serves every directory that
    shares it. Concurrent misses for one page or layout load it once, and share its
    outcome; a layout may be loaded ahead (`prefetch_layout`), for a walk that will
    visit the directory next.
    """

    def __init__(self, reader: PageReader, limiter: trio.CapacityLimiter,
                 max_weight: int = 200_000, max_layouts: int = 4096):
        self.reader = reader
        self.limiter = limiter
        self.pages: LoadingCache[str, Page] = LoadingCache(max_weight, _weight)
        self.layouts: LoadingCache[tuple[str, Claims | None], Layout] = \
            LoadingCache(max_layouts)

    def _layout_loader(self, tree: str, claims: Claims | None):
        async def load() -> Layout:
            layout, page = await trio.to_thread.run_sync(self.reader.layout, tree, claims,
                                                         limiter=self.limiter)
            if page is not None:
                self.pages.put(tree, page)
            return layout
        return load

    async def layout(self, tree: str, claims: Claims | None = None) -> Layout:
        return await self.layouts.get((tree, claims), self._layout_loader(tree, claims))

    def prefetch_layout(self, tree: str, claims: Claims | None) -> None:
        """Start loading a directory's layout (and its page, for a single-page one) in
        the background."""
        self.layouts.prefetch((tree, claims), self._layout_loader(tree, claims))

    def cached(self, layout: Layout, i: int) -> Page | None:
        """Page i if it is in memory: no load."""
        return self.pages.cached(layout.addrs[i])

    def _loader(self, layout: Layout, i: int):
        async def load() -> Page:
            return await trio.to_thread.run_sync(self.reader.page, layout, i,
                                                 limiter=self.limiter)
        return load

    async def page(self, layout: Layout, i: int) -> Page:
        return await self.pages.get(layout.addrs[i], self._loader(layout, i))

    def prefetch(self, layout: Layout, i: int) -> None:
        """Start loading page i in the background (a listing will want it next)."""
        if i < len(layout.addrs):
            self.pages.prefetch(layout.addrs[i], self._loader(layout, i))

    def __len__(self) -> int:
        return len(self.pages)
