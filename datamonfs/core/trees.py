"""Merkle directory trees: writing them bottom-up, reading them lazily.

A directory object holds its entries sorted by name. A directory with more than
PAGE_SIZE entries is split into pages, and its object lists each page's first
name, so finding one name reads the index and one page, never the whole list.
Large files keep their chunk list in an object of its own.
"""

from __future__ import annotations

import bisect
from typing import Iterator

from ..errors import IntegrityError
from .encoding import VERSION, field, is_address
from .model import DIR, FILE, Entry, check_entry_name, parse_chunks
from .objects import ObjectStore

PAGE_SIZE = 1024
INLINE_CHUNKS = 16


class DirectoryBuilder:
    """Collects one directory's entries, added in name order, with bounded memory."""

    def __init__(self, objects: ObjectStore):
        self.objects = objects
        self.page: list[Entry] = []
        self.pages: list[list] = []  # [first name, address, entry count]
        self.files = 0
        self.bytes = 0
        self._last: str | None = None

    def add(self, entry: Entry) -> None:
        if self._last is not None and entry.name <= self._last:
            raise ValueError("entries must be added in strictly increasing name order")
        self._last = entry.name
        self.page.append(entry)
        self.files += entry.file_count
        self.bytes += entry.size if entry.kind in (FILE, DIR) else 0
        if len(self.page) >= PAGE_SIZE:
            self._flush()

    def _flush(self) -> None:
        addr = self.objects.put(_leaf(self.page))
        self.pages.append([self.page[0].name, addr, len(self.page)])
        self.page = []

    def finish(self) -> str:
        """Write the directory object; returns its address."""
        if not self.pages:
            return self.objects.put(_leaf(self.page))
        if self.page:
            self._flush()
        return self.objects.put({"v": VERSION, "type": "tree", "pages": self.pages})

    def dir_entry(self, name: str, mode: int, mtime: int) -> Entry:
        return Entry(name, DIR, mode, mtime, self.bytes, tree=self.finish(), files=self.files)


def _leaf(entries: list[Entry]) -> dict:
    return {"v": VERSION, "type": "tree", "entries": [e.to_obj() for e in entries]}


def file_entry(objects: ObjectStore, name: str, mode: int, mtime: int,
               chunks: list[tuple[str, int]]) -> Entry:
    size = sum(s for _, s in chunks)
    if len(chunks) > INLINE_CHUNKS:
        addr = objects.put({"v": VERSION, "type": "chunks", "chunks": [list(c) for c in chunks]})
        return Entry(name, FILE, mode, mtime, size, chunklist=addr)
    return Entry(name, FILE, mode, mtime, size, chunks=tuple(chunks))


class TreeReader:
    """Reads directory objects and chunk lists, checking everything it parses."""

    def __init__(self, objects: ObjectStore):
        self.objects = objects

    def _node(self, addr: str) -> dict:
        obj = self.objects.get(addr, "tree")
        if "pages" in obj:
            pages = field(obj, "pages", list, f"tree {addr[:12]}")
            names = []
            for page in pages:
                if (not isinstance(page, list) or len(page) != 3 or not is_address(page[1])
                        or not isinstance(page[2], int)):
                    raise IntegrityError(f"tree {addr[:12]}: malformed page reference")
                names.append(check_entry_name(page[0], f"tree {addr[:12]}"))
            if names != sorted(set(names)):
                raise IntegrityError(f"tree {addr[:12]}: pages out of order")
        return obj

    def _leaf_entries(self, addr: str, where: str, obj: dict | None = None) -> list[Entry]:
        obj = obj or self.objects.get(addr, "tree")
        raw = field(obj, "entries", list, where)
        entries = [Entry.from_obj(r, where) for r in raw]
        if any(a.name >= b.name for a, b in zip(entries, entries[1:])):
            raise IntegrityError(f"{where}: entries out of order or repeated")
        return entries

    def entries(self, addr: str, where: str = "") -> Iterator[Entry]:
        """Every entry of a directory, in name order, one page in memory at a time."""
        where = where or f"tree {addr[:12]}"
        obj = self._node(addr)
        if "pages" not in obj:
            yield from self._leaf_entries(addr, where, obj)
            return
        for first, page_addr, _ in obj["pages"]:
            page = self._leaf_entries(page_addr, where)
            if page and page[0].name != first:
                raise IntegrityError(f"{where}: page does not start where its index says")
            yield from page

    def lookup(self, addr: str, name: str) -> Entry | None:
        obj = self._node(addr)
        where = f"tree {addr[:12]}"
        if "pages" in obj:
            pages = obj["pages"]
            i = bisect.bisect_right([p[0] for p in pages], name) - 1
            if i < 0:
                return None
            entries = self._leaf_entries(pages[i][1], where)
        else:
            entries = self._leaf_entries(addr, where, obj)
        i = bisect.bisect_left([e.name for e in entries], name)
        return entries[i] if i < len(entries) and entries[i].name == name else None

    def count(self, addr: str) -> int:
        obj = self._node(addr)
        if "pages" in obj:
            return sum(p[2] for p in obj["pages"])
        return len(field(obj, "entries", list, f"tree {addr[:12]}"))

    def chunks(self, entry: Entry) -> list[tuple[str, int]]:
        """A file's chunk list, fetched from its own object when it is not inline."""
        if entry.chunks is not None:
            return list(entry.chunks)
        where = f"chunk list of {entry.name!r}"
        obj = self.objects.get(entry.chunklist, "chunks")
        chunks = parse_chunks(obj.get("chunks"), where)
        if sum(s for _, s in chunks) != entry.size:
            raise IntegrityError(f"{where}: chunk sizes do not add up to the file size")
        return chunks
