"""`Bundle`: one immutable bundle, read from Python.

    b = store.bundle("imagery:v1")
    b.ls("tiles")                      # FileInfo of each entry of a directory
    for info in b.walk(pattern="**/*.csv"): ...
    with b.open("tiles/index.csv") as f: f.seek(100); f.read(10)
    b.read_text("README.md"); b.download("./copy", pattern="tiles/**")
    for change in b.diff(store.bundle("imagery:v2")): ...
"""

from __future__ import annotations

import bisect
import datetime
from typing import TYPE_CHECKING, Iterator

from ..cache import CachedChunkReader, FileReader
from ..core import export
from ..core.diff import Change, diff_bundles
from ..core.globs import matcher, pruner
from ..core.model import DIR, LINK, Bundle as Record, Entry, Input, Process
from ..core.trees import check_placement
from ..errors import IsADirectory, NotADirectory, PathNotFound
from .files import BundleFile, FileInfo, RawBundleFile, _when, root_info
from .paths import split_path

if TYPE_CHECKING:
    from .lineage import Lineage
    from .store import Store

__all__ = ["Bundle", "Change"]


class Bundle:
    """A bundle of a repo: its record (who, when, why, totals, what it was made from) and
    its files, read lazily through the store's block cache. Bundles never change, so a
    Bundle object stays valid; equal ids mean equal bundles."""

    def __init__(self, store: "Store", record: Record):
        self._store = store
        self.record = record

    # -- the record ----------------------------------------------------------

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def repo(self) -> str:
        return self.record.repo

    @property
    def time(self) -> datetime.datetime:
        """When it was made (UTC)."""
        return _when(self.record.time)

    @property
    def time_ns(self) -> int:
        return self.record.time

    @property
    def author(self) -> str:
        return self.record.author_name

    @property
    def email(self) -> str:
        return self.record.author_email

    @property
    def message(self) -> str:
        return self.record.message

    @property
    def files(self) -> int:
        """Files (and symlinks) in the whole bundle."""
        return self.record.files

    @property
    def bytes(self) -> int:
        return self.record.bytes

    @property
    def parents(self) -> tuple[str, ...]:
        return self.record.parents

    @property
    def tree(self) -> str:
        return self.record.tree

    @property
    def inputs(self) -> tuple[Input, ...]:
        """The bundles it was made from (repo, bundle id), when recorded."""
        return self.record.inputs

    @property
    def process(self) -> Process | None:
        """What made it (command, host, notebook, code version, description), if recorded."""
        return self.record.process

    @property
    def ref(self) -> str:
        """REPO:ID, a ref that names this bundle and no other."""
        return f"{self.repo}:{self.id}"

    def parent(self) -> "Bundle | None":
        """The first parent (the branch head this one followed), or None."""
        return self._store.bundle_by_id(self.repo, self.parents[0]) if self.parents else None

    def to_json(self) -> dict:
        """As `datamonfs bundle get --json` prints it."""
        r = self.record
        return {"id": r.id, "repo": r.repo, "time": self.time.isoformat(timespec="seconds"),
                "author": r.author_name, "email": r.author_email, "message": r.message,
                "files": r.files, "bytes": r.bytes, "parents": list(r.parents), "tree": r.tree,
                **r.provenance.to_obj()}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Bundle) and (self.repo, self.id) == (other.repo, other.id)

    def __hash__(self) -> int:
        return hash((self.repo, self.id))

    def __repr__(self) -> str:
        return f"<Bundle {self.repo}:{self.id[:12]} {self.message[:40]!r}>"

    # -- paths ---------------------------------------------------------------

    def _entry(self, path: str) -> tuple[str, Entry | None]:
        """(normalized path, entry; None for the root); PathNotFound when absent."""
        names = split_path(path)
        rel = "/".join(names)
        if not names:
            return rel, None
        entry = self._store.repository.lookup(self.record, rel)
        if entry is None:
            raise PathNotFound(f"no file or directory {rel!r} in bundle {self.id[:12]} "
                               f"of {self.repo!r}")
        return rel, entry

    def stat(self, path: str) -> FileInfo:
        """The FileInfo of a path ('' is the root); PathNotFound when it is not there."""
        rel, entry = self._entry(path)
        if entry is None:
            return root_info(self.record.tree, self.record.files, self.record.bytes)
        return FileInfo.of(rel, entry)

    def exists(self, path: str) -> bool:
        try:
            self._entry(path)
        except PathNotFound:
            return False
        return True

    def _dir_tree(self, path: str) -> tuple[str, str]:
        rel, entry = self._entry(path)
        if entry is None:
            return rel, self.record.tree
        if entry.kind != DIR:
            raise NotADirectory(f"{rel} is a {'symlink' if entry.kind == LINK else 'file'} in "
                                f"bundle {self.id[:12]} of {self.repo!r}, not a directory")
        return rel, entry.tree

    def iterdir(self, path: str = "", after: str | None = None) -> Iterator[FileInfo]:
        """The entries of a directory in name order, one page of the directory in memory
        at a time; with `after` (a name: a cursor), those after it (a paged directory
        starts at the page holding it, so resuming a listing reads no earlier page)."""
        rel, tree = self._dir_tree(path)
        trees = self._store.repository.trees
        d = trees.directory(tree, where=rel or "/")
        if d.pages:
            first = 0 if after is None else max(
                bisect.bisect_right([p.first for p in d.pages], after) - 1, 0)
            pages = (trees.page(d, i) for i in range(first, len(d.pages)))
        else:
            pages = iter([list(d.entries)])
        prefix = f"{rel}/" if rel else ""
        for page in pages:
            for entry in page:
                if after is not None and entry.name <= after:
                    continue
                check_placement(entry, prefix + entry.name)
                yield FileInfo.of(prefix + entry.name, entry)

    def ls(self, path: str = "", limit: int | None = None, after: str | None = None
           ) -> list[FileInfo]:
        """The entries of a directory in name order (at most `limit`, after the name
        `after`: pages of a listing); NotADirectory for a file."""
        out = []
        for info in self.iterdir(path, after):
            if limit is not None and len(out) >= limit:
                break
            out.append(info)
        return out

    def walk(self, path: str = "", pattern: str | None = None, dirs: bool = False
             ) -> Iterator[FileInfo]:
        """Every file and symlink below `path` (and directories, with `dirs`), depth first
        in name order, checked against the bundle's rules as it goes. `pattern` is the
        CLI's --filter glob (core/globs.py: '*' within a name, '**' any depth)."""
        rel, entry = self._entry(path)
        if entry is not None and entry.kind != DIR:
            raise NotADirectory(f"{rel} is not a directory in bundle {self.id[:12]} of "
                                f"{self.repo!r}")
        wanted, descend = matcher(pattern), pruner(pattern)
        trees = self._store.repository.trees
        if entry is None:
            entries = trees.walk(self.record.tree, (self.record.files, self.record.bytes),
                                 descend=descend)
        else:
            entries = trees.walk(entry.tree, (entry.files, entry.size), rel + "/", descend)
        for p, entry in entries:
            if (entry.kind != DIR or dirs) and wanted(p):
                yield FileInfo.of(p, entry)

    # -- content -------------------------------------------------------------

    def _file_reader(self, path: str) -> tuple[FileInfo, FileReader]:
        rel, entry = self._entry(path)
        if entry is None or entry.kind == DIR:
            raise IsADirectory(f"{rel or '/'} is a directory in bundle {self.id[:12]} of "
                               f"{self.repo!r}")
        if entry.kind == LINK:
            raise PathNotFound(f"{rel} is a symlink to {entry.target!r} in bundle "
                               f"{self.id[:12]} of {self.repo!r}; open that path")
        chunks = self._store.repository.trees.chunks(entry)
        return FileInfo.of(rel, entry), FileReader(self._store.reader, chunks)

    def open(self, path: str, buffer_size: int = 256 << 10) -> BundleFile:
        """A seekable binary file object over a file (see BundleFile): nothing is read
        until asked; sequential reads fetch ahead."""
        info, reader = self._file_reader(path)
        return BundleFile(RawBundleFile(reader, info), buffer_size)

    def open_reader(self, path: str) -> tuple[FileInfo, FileReader]:
        """For servers and fsspec: a path's FileInfo and a thread-safe FileReader
        (`read(offset, length)`; close it when done)."""
        return self._file_reader(path)

    def read_bytes(self, path: str, start: int = 0, end: int | None = None) -> bytes:
        """A file's bytes, or bytes [start, end) of it."""
        info, reader = self._file_reader(path)
        try:
            end = info.size if end is None else min(end, info.size)
            return reader.read(start, max(end - start, 0))
        finally:
            reader.close()

    def read_text(self, path: str, encoding: str = "utf-8", errors: str = "strict") -> str:
        return self.read_bytes(path).decode(encoding, errors)

    def download(self, dest: str, pattern: str | None = None, resume: bool = False,
                 delete: bool = False, progress=None, cache: bool = True
                 ) -> export.DownloadStats:
        """Write the bundle's files (those matching the glob `pattern`) under the local
        directory `dest`, every chunk verified; see core/export.py (resumable, never
        writing outside `dest`). `delete` removes what `dest` holds that the bundle does
        not; `cache=False` reads chunks straight from the store, leaving the block cache
        as it is (a one-off download bigger than the cache)."""
        repository = self._store.repository
        if cache:
            return export.download(repository, self.record, dest, reader=self._store.reader,
                                   name_filter=pattern, resume=resume or delete,
                                   delete=delete, progress=progress)
        reader = CachedChunkReader(None, repository.chunks)
        try:
            return export.download(repository, self.record, dest, reader=reader,
                                   name_filter=pattern, resume=resume or delete,
                                   delete=delete, progress=progress)
        finally:
            reader.close()

    # -- relations -----------------------------------------------------------

    def diff(self, other: "Bundle") -> Iterator[Change]:
        """What changed from this bundle to `other` (of any repo of the store): Change
        objects (path, change "added"/"deleted"/"modified", old_size, new_size), in path
        order, streamed; equal subtrees are skipped by address."""
        return diff_bundles(self._store.repository, self.record, other.record)

    def lineage(self, up: bool = True, down: bool = True, depth: int | None = None
                ) -> "Lineage":
        """What this bundle was made from (up) and what was made from it (down)."""
        return self._store.lineage(self, up=up, down=down, depth=depth)

    def set_label(self, name: str) -> "Bundle":
        """Point label `name` of this bundle's repo at it (recording who did)."""
        self._store.repo(self.repo).set_label(name, self.id)
        return self
