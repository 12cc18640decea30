"""A directory's entries by position: its page index, and a bounded cache of parsed pages.

Inode numbers and readdir offsets are positions in a directory (see inodes.py), so
the file system needs "entry number i" and "where is this name" without reading a
whole directory: a tree object is either one leaf page or an index of pages with
their first names and entry counts. Everything here that touches the store is
blocking and runs in a worker thread; the cache itself is used on the trio thread.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from dataclasses import dataclass

import trio

from ..core.model import Entry
from ..core.trees import TreeReader
from ..errors import IntegrityError


@dataclass(frozen=True, slots=True)
class Layout:
    """Where a directory's entries live: page addresses, first names, first positions."""

    tree: str
    addrs: tuple[str, ...]
    firsts: tuple[str, ...]  # empty for a single leaf (nothing to bisect)
    starts: tuple[int, ...]  # position of each page's first entry
    total: int

    def page_of(self, index: int) -> int:
        return bisect.bisect_right(self.starts, index) - 1

    def page_for_name(self, name: str) -> int:
        if not self.firsts:
            return 0
        return bisect.bisect_right(self.firsts, name) - 1


@dataclass(frozen=True, slots=True)
class Page:
    entries: list[Entry]
    names: list[str]

    def find(self, name: str) -> int | None:
        i = bisect.bisect_left(self.names, name)
        return i if i < len(self.names) and self.names[i] == name else None


def _weight(page: Page) -> int:
    # Entries with inline chunk lists are the big ones; count each reference.
    return sum(1 + len(e.chunks or ()) for e in page.entries)


class PageReader:
    """Blocking reads of layouts and pages, checked like core's TreeReader checks them.

    Uses TreeReader's node and leaf parsers (private to core) so that validation of
    untrusted tree objects stays in one place.
    """

    def __init__(self, trees: TreeReader):
        self.trees = trees

    def layout(self, tree: str) -> tuple[Layout, Page | None]:
        """The page index of a tree; for a single-leaf tree also its only page."""
        node = self.trees._node(tree)
        if "pages" not in node:
            page = self._page(self.trees._leaf_entries(tree, f"tree {tree[:12]}", node))
            return Layout(tree, (tree,), (), (0,), len(page.entries)), page
        addrs, firsts, starts, total = [], [], [], 0
        for first, addr, count in node["pages"]:
            if count <= 0:
                raise IntegrityError(f"tree {tree[:12]}: page with no entries")
            addrs.append(addr)
            firsts.append(first)
            starts.append(total)
            total += count
        return Layout(tree, tuple(addrs), tuple(firsts), tuple(starts), total), None

    def page(self, layout: Layout, i: int) -> Page:
        where = f"tree {layout.tree[:12]}"
        page = self._page(self.trees._leaf_entries(layout.addrs[i], where))
        end = layout.starts[i + 1] if i + 1 < len(layout.starts) else layout.total
        # Positions are inode numbers: a page must hold exactly what its index says.
        if len(page.entries) != end - layout.starts[i] or (
                layout.firsts and page.names[0] != layout.firsts[i]):
            raise IntegrityError(f"{where}: page {i} does not match the directory index")
        return page

    @staticmethod
    def _page(entries: list[Entry]) -> Page:
        return Page(entries, [e.name for e in entries])


class PageCache:
    """Parsed pages by address, least recently used evicted past `max_weight`.

    Pages are content-addressed, so one cached page serves every directory that
    shares it. Concurrent misses for one page load it once.
    """

    def __init__(self, reader: PageReader, limiter: trio.CapacityLimiter,
                 max_weight: int = 200_000):
        self.reader = reader
        self.limiter = limiter
        self.max_weight = max_weight
        self.weight = 0
        self._pages: OrderedDict[str, tuple[Page, int]] = OrderedDict()
        self._loading: dict[str, trio.Event] = {}

    async def layout(self, tree: str) -> Layout:
        layout, page = await trio.to_thread.run_sync(self.reader.layout, tree, limiter=self.limiter)
        if page is not None:
            self._put(tree, page)
        return layout

    async def page(self, layout: Layout, i: int) -> Page:
        addr = layout.addrs[i]
        while True:
            hit = self._pages.get(addr)
            if hit is not None:
                self._pages.move_to_end(addr)
                return hit[0]
            loading = self._loading.get(addr)
            if loading is None:
                break
            await loading.wait()  # then re-check: the load may have failed
        self._loading[addr] = event = trio.Event()
        try:
            page = await trio.to_thread.run_sync(self.reader.page, layout, i, limiter=self.limiter)
            self._put(addr, page)
            return page
        finally:
            del self._loading[addr]
            event.set()

    def prefetch(self, layout: Layout, i: int) -> None:
        """Start loading page i in the background (a listing will want it next)."""
        if i < len(layout.addrs) and layout.addrs[i] not in self._pages \
                and layout.addrs[i] not in self._loading:
            trio.lowlevel.spawn_system_task(self._prefetch, layout, i)

    async def _prefetch(self, layout: Layout, i: int) -> None:
        try:
            await self.page(layout, i)
        except Exception:
            pass  # the listing that needs the page loads it again and reports

    def _put(self, addr: str, page: Page) -> None:
        if addr in self._pages:
            return
        w = _weight(page)
        self._pages[addr] = (page, w)
        self.weight += w
        while self.weight > self.max_weight and len(self._pages) > 1:
            _, (_, old) = self._pages.popitem(last=False)
            self.weight -= old

    def __len__(self) -> int:
        return len(self._pages)
