"""Blocking, cached reads of the base trees under a writable overlay.

The overlay looks names up in base directories and lists them from a given
name on (readdir resumes where it stopped), so it needs "the entries after X"
without reading a paged directory from its start. Layouts and pages come from
fs.pages.PageReader (which checks them); parsed pages are kept in a small LRU,
shared by every directory that shares a page. Thread-safe.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from ..core.model import DIR, Entry
from ..core.trees import TreeReader
from ..lru import LRU
from .pages import Layout, Page, PageReader


class WouldBlock(Exception):
    """A base page is not in memory, and this thread asked not to wait for the store:
    `BaseTrees.load(e)` fetches it (in a thread, holding no lock), then retry."""

    def __init__(self, tree: str, layout: Layout | None = None, page: int = 0):
        super().__init__(tree)
        self.tree, self.layout, self.page = tree, layout, page


class BaseTrees:
    def __init__(self, trees: TreeReader, max_pages: int = 512, max_layouts: int = 4096):
        self.reader = PageReader(trees)
        self._layouts: LRU[str, Layout] = LRU(max_layouts)
        self._pages: LRU[str, Page] = LRU(max_pages)
        self._subdirs: LRU[str, int] = LRU(max_layouts)
        self._lock = threading.Lock()  # LRU is not thread-safe
        self._local = threading.local()

    @contextmanager
    def memory_only(self) -> Iterator[None]:
        """In this block a read that would need the store raises WouldBlock instead, so
        an event loop can answer from memory and hand only misses to a thread."""
        self._local.memory_only = True
        try:
            yield
        finally:
            self._local.memory_only = False

    def _miss(self, tree: str, layout: Layout | None = None, page: int = 0) -> None:
        if getattr(self._local, "memory_only", False):
            raise WouldBlock(tree, layout, page)

    def load(self, miss: WouldBlock) -> None:
        """Fetch what a WouldBlock said was missing."""
        if miss.layout is None:
            self._layout(miss.tree)
        else:
            self._page(miss.layout, miss.page)

    def _layout(self, tree: str) -> Layout:
        with self._lock:
            layout = self._layouts.get(tree)
            if layout is not None:
                return layout
        self._miss(tree)
        layout, page = self.reader.layout(tree)
        with self._lock:
            self._layouts[tree] = layout
            if page is not None:
                self._pages[tree] = page
        return layout

    def _page(self, layout: Layout, i: int) -> Page:
        addr = layout.addrs[i]
        with self._lock:
            page = self._pages.get(addr)
            if page is not None:
                return page
        self._miss(layout.tree, layout, i)
        page = self.reader.page(layout, i)
        with self._lock:
            self._pages[addr] = page
        return page

    def lookup(self, tree: str, name: str) -> Entry | None:
        layout = self._layout(tree)
        i = layout.page_for_name(name)
        if i < 0 or layout.total == 0:
            return None
        page = self._page(layout, i)
        at = page.find(name)
        return page.entries[at] if at is not None else None

    def subdirs(self, tree: str) -> int:
        """How many of a directory's entries are directories (its link count is 2 more).
        Reads every page of it once; remembered by tree address (trees never change)."""
        with self._lock:
            known = self._subdirs.get(tree)
        if known is not None:
            return known
        layout = self._layout(tree)
        count = sum(e.kind == DIR for i in range(len(layout.addrs))
                    for e in self._page(layout, i).entries)
        with self._lock:
            self._subdirs[tree] = count
        return count

    def entries_after(self, tree: str, after: str | None = None) -> Iterator[Entry]:
        """Entries in name order whose names sort after `after` (all when None)."""
        layout = self._layout(tree)
        if layout.total == 0:
            return
        i = max(layout.page_for_name(after), 0) if after is not None else 0
        for p in range(i, len(layout.addrs)):
            page = self._page(layout, p)
            for entry in page.entries:
                if after is None or entry.name > after:
                    yield entry
