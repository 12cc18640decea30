"""Merkle directory trees: writing them bottom-up, reading them lazily.

A directory object holds its entries sorted by name. A directory with PAGE_SIZE
entries or more is split into pages, and its object lists each page's first
name, so finding one name reads the index and one page, never the whole list.
Large files keep their chunk list in an object of its own.
Tree objects, pages and chunks objects exactly: docs/FORMAT.md §5.2-5.4 (normative).
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterator

from ..errors import IntegrityError
from . import rules
from .chunks import ChunkRef, same_content
from .encoding import field, is_address, written_version
from .model import (DIR, FILE, LINK, Entry, Xattrs, check_entry_name, chunk_list_obj,
                    file_chunks, parse_chunk_list)
from .objects import ObjectStore

PAGE_SIZE = 1024
MAX_PAGE = 1 << 20  # entries a page or a page index may have (the writer puts 1024)
INLINE_CHUNKS = 16
VERIFIED_DIRS = 4096  # directories whose totals a reader remembers as checked


class DirectoryBuilder:
    """Collects one directory's entries, added in name order, with bounded memory."""

    def __init__(self, objects: ObjectStore):
        self.objects = objects
        self.page: list[Entry] = []
        self.pages: list[list] = []  # [first name, address, entry count]
        self.totals = rules.Totals()
        self._last: str | None = None

    @property
    def files(self) -> int:
        return self.totals.files

    @property
    def bytes(self) -> int:
        return self.totals.bytes

    def add(self, entry: Entry) -> None:
        if self._last is not None and entry.name <= self._last:
            raise ValueError("entries must be added in strictly increasing name order")
        self._last = entry.name
        self.page.append(entry)
        self.totals.add(entry.kind, entry.size, entry.files)
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
        return self.objects.put({"v": written_version("tree"), "type": "tree",
                                 "pages": self.pages})

    def dir_entry(self, name: str, mode: int, mtime: int, xattrs: Xattrs = ()) -> Entry:
        return Entry(name, DIR, mode, mtime, self.bytes, tree=self.finish(), files=self.files,
                     xattrs=xattrs)


def _leaf(entries: list[Entry]) -> dict:
    return {"v": written_version("tree"), "type": "tree", "entries": [e.to_obj() for e in entries]}


def file_entry(objects: ObjectStore, name: str, mode: int, mtime: int,
               chunks: list[ChunkRef], xattrs: Xattrs = ()) -> Entry:
    size = sum(c.size for c in chunks)
    if len(chunks) > INLINE_CHUNKS:
        listed, packs = chunk_list_obj(chunks)
        addr = objects.put({"v": written_version("chunks"), "type": "chunks", "chunks": listed,
                            "packs": packs})
        return Entry(name, FILE, mode, mtime, size, chunklist=addr, xattrs=xattrs)
    return Entry(name, FILE, mode, mtime, size, chunks=tuple(chunks), xattrs=xattrs)


Claims = tuple[int, int]  # (files, bytes) a directory's entry, or a bundle, says are below


def claims_of(entry: Entry) -> Claims:
    return entry.files, entry.size


@dataclass(frozen=True, slots=True)
class PageRef:
    first: str  # the page's first name
    addr: str
    count: int  # its entries


@dataclass(frozen=True, slots=True)
class Directory:
    """A parsed directory object: a page index, or the entries of its single page."""

    addr: str
    pages: tuple[PageRef, ...]  # empty for a single page
    entries: tuple[Entry | BadEntry, ...] | None  # the single page's entries
    where: str  # for messages: the directory's path, or its address

@dataclass(frozen=True, slots=True)
class BadEntry:
    """An entry whose name is fine but whose other fields are not. Only lenient reads
    (a mount, which then fails just this entry) see one; strict reads raise."""

    name: str
    reason: str
    kind = "bad"


class TreeReader:
    """Reads directory objects and chunk lists, checking everything it parses.

    Structure is always checked: names, their order within and across pages, the
    page index. `entries` with the claims of the directory's entry (or of the
    bundle, for the root) also checks the totals before it yields anything, so a
    walk never descends below a directory that lies about what it holds.
    """

    def __init__(self, objects: ObjectStore):
        self.objects = objects
        self._verified: OrderedDict[tuple[str, Claims], None] = OrderedDict()

    def directory(self, addr: str, lenient: bool = False, where: str = "") -> Directory:
        """A directory object, parsed; `where` (its path) names it in errors."""
        obj = self.objects.get(addr, "tree")
        where = f"directory {where}" if where else f"tree {addr[:12]}"
        if "pages" not in obj:
            return Directory(addr, (), tuple(_parse_page(obj, where, None, None, lenient)),
                             where)
        raw = field(obj, "pages", list, where)
        if not 0 < len(raw) <= MAX_PAGE:
            raise IntegrityError(f"{where}: a page index of {len(raw)} pages")
        pages = []
        for page in raw:
            if (not isinstance(page, list) or len(page) != 3 or not is_address(page[1])
                    or type(page[2]) is not int or not 0 < page[2] <= MAX_PAGE):
                raise IntegrityError(f"{where}: malformed page reference")
            first = check_entry_name(page[0], where)
            if pages and first <= pages[-1].first:
                raise IntegrityError(f"{where}: pages out of order")
            pages.append(PageRef(first, page[1], page[2]))
        return Directory(addr, tuple(pages), None, where)

    def page(self, d: Directory, i: int, lenient: bool = False) -> list[Entry | BadEntry]:
        """The entries of page i of a paged directory: they start with the name the index
        gives, stay below the next page's, and are as many as it says."""
        ref = d.pages[i]
        upper = d.pages[i + 1].first if i + 1 < len(d.pages) else None
        entries = _parse_page(self.objects.get(ref.addr, "tree"), d.where, ref.first, upper,
                              lenient)
        if not entries or entries[0].name != ref.first or len(entries) != ref.count:
            raise IntegrityError(f"{d.where}: page {i} does not match the directory index")
        return entries

    def _pages(self, d: Directory) -> Iterator[list[Entry]]:
        if not d.pages:
            yield list(d.entries)
            return
        for i in range(len(d.pages)):
            yield self.page(d, i)

    def entries(self, addr: str, where: str = "", expect: Claims | None = None) -> Iterator[Entry]:
        """Every entry of a directory, in name order, one page in memory at a time. With
        `expect`, the directory's totals are checked first (see the class)."""
        d = self.directory(addr, where=where)
        if expect is not None:
            self.check_totals(d, expect)
        for page in self._pages(d):
            yield from page

    def check_totals(self, d: Directory, expect: Claims) -> None:
        key = (d.addr, expect)
        if key in self._verified:
            self._verified.move_to_end(key)
            return
        totals = rules.Totals()
        for page in self._pages(d):
            for e in page:
                totals.add(e.kind, e.size, e.files)
        problem = totals.problem(*expect)
        if problem:
            raise IntegrityError(f"{d.where}: the directory {problem}")
        self._verified[key] = None
        if len(self._verified) > VERIFIED_DIRS:
            self._verified.popitem(last=False)

    def lookup(self, addr: str, name: str) -> Entry | None:
        d = self.directory(addr)
        if d.pages:
            i = bisect.bisect_right([p.first for p in d.pages], name) - 1
            if i < 0:
                return None
            entries = self.page(d, i)
        else:
            entries = d.entries
        i = bisect.bisect_left([e.name for e in entries], name)
        return entries[i] if i < len(entries) and entries[i].name == name else None

    def count(self, addr: str) -> int:
        d = self.directory(addr)
        return sum(p.count for p in d.pages) if d.pages else len(d.entries)

    def chunks(self, entry: Entry) -> list[ChunkRef]:
        """A file's chunk list, fetched from its own object when it is not inline."""
        where = f"chunk list of {entry.name!r}"
        inline = file_chunks(entry, where)
        if inline is not None:
            return list(inline)
        obj = self.objects.get(entry.chunklist, "chunks")
        packs = field(obj, "packs", list, where) if obj["v"] >= 2 else None
        chunks = parse_chunk_list(obj.get("chunks"), packs, where)
        if sum(c.size for c in chunks) != entry.size:
            raise IntegrityError(f"{where}: chunk sizes do not add up to the file size")
        return chunks

    def same(self, a: Entry, b: Entry) -> bool:
        """Whether two entries say the same: equal, or files whose chunk lists differ only in
        where the chunks are stored (two writers that packed one chunk at once)."""
        if a == b:
            return True
        if a.kind != FILE or b.kind != FILE or (a.name, a.mode, a.mtime, a.size, a.xattrs) != (
                b.name, b.mode, b.mtime, b.size, b.xattrs):
            return False
        return same_content(self.chunks(a), self.chunks(b))

    def walk(self, tree: str, expect: Claims, prefix: str = "",
             descend: Callable[[str], bool] | None = None) -> Iterator[tuple[str, Entry]]:
        """Every entry below a tree, depth first in name order, as (path, entry), within
        the rules: totals checked before descending, depth and directories bounded, links
        kept inside. `descend(path + "/")` may prune directories."""
        budget = rules.WalkBudget(expect[0])
        stack = [(tree, expect, prefix, self.entries(tree, prefix or "/", expect))]
        while stack:
            entry = next(stack[-1][3], None)
            if entry is None:
                stack.pop()
                continue
            path = stack[-1][2] + entry.name
            check_placement(entry, path)
            yield path, entry
            if entry.kind == DIR and (descend is None or descend(path + "/")):
                problem = budget.directory()
                if problem:
                    raise IntegrityError(f"{path}: {problem}")
                claims = claims_of(entry)
                stack.append((entry.tree, claims, path + "/",
                              self.entries(entry.tree, path, claims)))


def check_placement(entry: Entry, path: str) -> None:
    """The rules that depend on where an entry is: depth, and where a link leads."""
    depth = path.count("/") + 1
    problem = rules.depth_problem(depth)
    if problem is None and entry.kind == LINK:
        problem = rules.link_problem(entry.target, depth - 1)
    if problem:
        what = f"symlink {path} -> {entry.target}" if entry.kind == LINK else path
        raise IntegrityError(f"refusing {what}: {problem}")


def _parse_page(obj: dict, where: str, lower: str | None, upper: str | None,
                lenient: bool) -> list[Entry | BadEntry]:
    """A leaf's entries: names valid, strictly increasing, within [lower, upper)."""
    raw = field(obj, "entries", list, where)
    if len(raw) > MAX_PAGE:
        raise IntegrityError(f"{where}: page of {len(raw)} entries")
    entries: list[Entry | BadEntry] = []
    version = obj["v"]
    last = lower
    for item in raw:
        if not isinstance(item, list) or len(item) not in (6, 7):
            raise IntegrityError(f"{where}: malformed directory entry")
        name = check_entry_name(item[0], where)
        if last is not None and (name < last or name == last and entries):
            raise IntegrityError(f"{where}: entries out of order or repeated ({name!r:.300})")
        if upper is not None and name >= upper:
            raise IntegrityError(f"{where}: entry {name!r:.300} belongs to a later page")
        last = name
        try:
            entries.append(Entry.from_obj(item, where, version, name_checked=True,
                                          defer_chunks=lenient))
        except IntegrityError as e:
            if not lenient:
                raise
            entries.append(BadEntry(name, str(e)))
    return entries
