"""Hostile store content: raw objects planted in a store, bypassing every writer check."""

from __future__ import annotations

from datamonfs.core.encoding import VERSION, address, encode
from datamonfs.core.model import Bundle
from datamonfs.core.repository import Author, Repository
from datamonfs.core.stores import open_store

T = 1_700_000_000_000_000_000


class Planter:
    """Writes raw objects into a store: trees, pages and bundles no writer would make."""

    def __init__(self, url: str, repo: str = "r"):
        self.repo = Repository(open_store(url))
        self.name = repo

    def chunk(self, data: bytes) -> str:
        addr = address(data)
        self.repo.store.put(f"chunk/{addr[:2]}/{addr}", data)
        return addr

    def raw(self, data: bytes) -> str:
        addr = address(data)
        self.repo.store.put(f"meta/{addr[:2]}/{addr}", data)
        return addr

    def tree(self, entries: list) -> str:
        return self.raw(encode({"v": VERSION, "type": "tree", "entries": entries}))

    def paged(self, pages: list[list]) -> str:
        index = [[p[0][0], self.tree(p), len(p)] for p in pages]
        return self.raw(encode({"v": VERSION, "type": "tree", "pages": index}))

    def bundle(self, tree: str, files: int, size: int, label: str = "bad") -> str:
        b = self.repo.write_bundle(Bundle(self.name, tree, (), "hostile", "Eve", "eve@x", T,
                                          files, size))
        self.repo.append_ref(self.name, "label", label, b.id, Author("Eve", "eve@x"))
        return b.id


def file_entry(name: str, chunks: list, size: int | None = None, mode: int = 0o644,
               mtime: int = T) -> list:
    return [name, "file", mode, mtime, sum(s for _, s in chunks) if size is None else size,
            [list(c) for c in chunks]]


def dir_entry(name: str, tree: str, files: int, size: int, mtime: int = T) -> list:
    return [name, "dir", 0o755, mtime, size, [tree, files]]


def link_entry(name: str, target: str) -> list:
    return [name, "link", 0o777, T, len(target.encode("utf-8", "surrogatepass")), target]
