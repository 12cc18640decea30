"""Commit: a base tree plus a description of what changed becomes a new bundle.

The caller (the writable mount's overlay) describes the new tree as changes to
a base tree: a `NewDir` lists, in name order, the names that differ from its
base directory (a `Change`, or None to remove the base entry); every name it
does not list keeps its base entry as it is. So an untouched subtree keeps its
tree address without being read, a renamed directory (`Keep`) keeps its whole
subtree, and only directories on the path to a change are written again.

A changed file (`NewFile`) says which byte ranges may differ from the file it
started from. FastCDC's cut points depend only on the bytes since the last cut
and the one byte at the cut (its test includes it), so cutting restarts at the
start of the base chunk holding the byte before the first changed one, and stops
as soon as a new cut lands on an old one at or past the end of the last change:
the old chunk list's tail is reused as is. The result is the chunk list a fresh
upload of the new content would produce, at the cost of the changed region. A file
cut with format 1's larger chunks is re-cut with those (chunks.cutting_of), so that
the cuts meet the old ones again; its new chunks still go into packs.

Synchronous and free of FUSE and trio: the daemon runs it in a thread.
"""

from __future__ import annotations

import bisect
import itertools
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Union

from ..errors import DatamonError, IntegrityError
from . import rules
from .chunks import V2, ChunkRef, Cutting, cutting_of, same_content
from .encoding import address, encode
from .ingest import ChunkUploader, UploadStats
from .model import DIR, FILE, LINK, NO_PROVENANCE, Bundle, Entry, Provenance, Xattrs
from .names import check_name
from .repository import BRANCH, LABEL, Author, Repository
from .trees import DirectoryBuilder, claims_of, file_entry

ReadFn = Callable[[int, int], bytes]


@dataclass(frozen=True)
class Keep:
    """An existing entry placed under this name: a rename keeps its chunks or tree."""

    entry: Entry
    key: object = None


@dataclass(frozen=True)
class NewLink:
    target: str
    mode: int
    mtime: int
    key: object = None


@dataclass(frozen=True)
class NewFile:
    """A file's new content: `read(offset, length)` returns it. With a `base` file,
    bytes outside `changed` ranges (and below both sizes) equal the base's bytes."""

    mode: int
    mtime: int
    size: int
    read: ReadFn
    base: Entry | None = None
    changed: tuple[tuple[int, int], ...] = ()  # [start, end) ranges, any order
    key: object = None
    xattrs: Xattrs = ()


@dataclass(frozen=True)
class NewDir:
    """A directory as its base tree (None: empty) plus changes: `changes()` yields
    (name, change or None) in strictly increasing name order; None removes the name."""

    mode: int
    mtime: int
    base: str | None
    changes: Callable[[], Iterable[tuple[str, "Change | None"]]]
    key: object = None
    xattrs: Xattrs = ()


Change = Union[Keep, NewLink, NewFile, NewDir]  # what a name of a NewDir becomes
OnEntry = Callable[[object, Entry], None]


class CommitError(DatamonError):
    """The staged changes cannot become a bundle as they are (exit 1)."""

    code = "commit_refused"


@dataclass
class CommitStats(UploadStats):
    files_rechunked: int = 0
    bytes_rechunked: int = 0  # bytes read and cut again
    chunks_reused: int = 0  # chunks taken from the base files unread


def _empty_changes() -> Iterable:
    return ()


class TreeCommit:
    """Writes the trees of a change description bottom-up, uploading new chunks."""

    def __init__(self, repo: Repository, on_entry: OnEntry | None = None,
                 progress: Callable[[int], None] | None = None):
        self.repo = repo
        self.on_entry = on_entry
        self.progress = progress  # called with the bytes of each chunk cut
        self.stats = CommitStats()
        self.uploader = ChunkUploader(repo, self.stats)

    def build(self, root: NewDir | Keep) -> Entry:
        """The root entry (named ""); every chunk and tree it references is stored."""
        if not isinstance(root, Keep):  # a Keep is stored already (an upload refreshed)
            self.repo.refresh_locations()
        try:
            entry = root.entry if isinstance(root, Keep) else self._dir("", root, "")
            self.uploader.finish()
        except BaseException:
            self.uploader.abort()
            raise
        return entry

    def _change(self, name: str, change: Change, rel: str) -> Entry:
        _refuse(rules.depth_problem(rel.count("/") + 1), rel)
        if isinstance(change, Keep):
            entry = change.entry._replace(name=name)
            self._check_kept(entry, rel)
        elif isinstance(change, NewDir):
            entry = self._dir(name, change, rel)
        elif isinstance(change, NewFile):
            entry = self._file(name, change, rel)
        elif isinstance(change, NewLink):
            _refuse(rules.link_problem(change.target, rules.depth_of(rel)),
                    f"{rel} -> {change.target}")
            entry = Entry(name, LINK, change.mode, change.mtime, len(change.target.encode()),
                          target=change.target)
        else:
            raise TypeError(f"not a change: {change!r}")
        if self.on_entry is not None and change.key is not None:
            self.on_entry(change.key, entry)
        return entry

    def _check_kept(self, entry: Entry, rel: str) -> None:
        """An entry placed under a new name keeps its links only where they stay inside:
        a link, or the links below a directory moved closer to the root."""
        if entry.kind == LINK:
            _refuse(rules.link_problem(entry.target, rules.depth_of(rel)),
                    f"{rel} -> {entry.target}")
        elif entry.kind == DIR:
            try:
                for _ in self.repo.trees.walk(entry.tree, claims_of(entry), rel + "/"):
                    pass
            except IntegrityError as e:
                raise CommitError(f"{e}; change or remove it, then commit again") from None

    def _dir(self, name: str, d: NewDir, rel: str) -> Entry:
        builder = DirectoryBuilder(self.repo.objects)
        base = self.repo.trees.entries(d.base, f"directory {rel or '/'}") if d.base else iter(())
        for bname, old, new, changed in _merge(base, d.changes(), rel):
            if not changed:
                builder.add(old)
            elif new is not None:
                child_rel = f"{rel}/{bname}" if rel else bname
                builder.add(self._change(bname, new, child_rel))
        _refuse(rules.xattrs_problem(DIR, d.xattrs), rel or "/")
        return builder.dir_entry(name, d.mode, d.mtime, d.xattrs)

    # -- files ---------------------------------------------------------------

    def _file(self, name: str, f: NewFile, rel: str) -> Entry:
        _refuse(rules.xattrs_problem(FILE, f.xattrs), rel)
        base = f.base if f.base is not None and f.base.kind == FILE else None
        base_size = base.size if base else 0
        first, last = _changed_span(f, base_size)
        if first is None:  # same bytes as the base (or both empty): same chunks
            if base is None:
                return Entry(name, FILE, f.mode, f.mtime, 0, chunks=(), xattrs=f.xattrs)
            return Entry(name, FILE, f.mode, f.mtime, base.size, chunks=base.chunks,
                         chunklist=base.chunklist, xattrs=f.xattrs)
        old = self.repo.trees.chunks(base) if base else []
        starts = [0, *itertools.accumulate(c.size for c in old)]
        # The chunk holding the byte before the first change: whether a chunk ends where
        # the change begins depends on the changed byte too (FastCDC tests the hash at
        # the cut including the byte there).
        k = max(0, min(bisect.bisect_right(starts, first - 1) - 1, len(old) - 1))
        chunks = old[:k]
        pos = starts[k] if old else 0
        boundaries = {s: i for i, s in enumerate(starts)}
        tail: list[ChunkRef] = []
        self.stats.files_rechunked += 1
        for data in cut_range(f.read, pos, f.size, rel, cutting_of(old)):
            chunks.append(self.uploader.add(data))
            pos += len(data)
            self.stats.bytes_rechunked += len(data)
            if self.progress is not None:
                self.progress(len(data))
            j = boundaries.get(pos)
            if j is not None and pos >= last and pos < f.size:
                tail = old[j:]  # cuts re-synchronised: the rest is the base's
                break
        self.stats.chunks_reused += k + len(tail)
        chunks += tail
        if base is not None and same_content(chunks, old):  # written back as it was
            return Entry(name, FILE, f.mode, f.mtime, base.size, chunks=base.chunks,
                         chunklist=base.chunklist, xattrs=f.xattrs)
        entry = file_entry(self.repo.objects, name, f.mode, f.mtime, chunks, f.xattrs)
        if entry.size != f.size:
            raise CommitError(f"{rel}: staged content has {entry.size} bytes, expected {f.size}")
        return entry


def _changed_span(f: NewFile, base_size: int) -> tuple[int | None, int]:
    """First changed byte and end of the last change; (None, 0) when nothing changed."""
    starts, ends = [], []
    for a, b in f.changed:
        a, b = max(a, 0), min(b, f.size)
        if a < b:
            starts.append(a)
            ends.append(b)
    if f.size != base_size:  # the end moved: the last chunk changes, nothing after it is reused
        starts.append(min(f.size, base_size))
        ends.append(f.size)
    if not starts:
        return None, 0
    return min(starts), max(ends)


def cut_range(read: ReadFn, start: int, end: int, rel: str = "",
              cutting: Cutting = V2) -> Iterator[bytes]:
    """The chunks `cut` would give for bytes [start, end) of a file when a cut point
    lies at `start`, reading little past each chunk: cutting stops at the first
    re-synchronised boundary, so whatever was read beyond it is wasted (a stream
    chunker reads 8 MiB ahead)."""
    cdc = cutting.chunker()
    buf, at, want = b"", start, 2 * cutting.avg
    while at < end:
        fill = min(want, end - at) - len(buf)
        if fill > 0:
            data = read(at + len(buf), fill)
            if len(data) != fill:
                raise CommitError(f"{rel}: staged content ended early at byte "
                                  f"{at + len(buf) + len(data)}")
            buf += data
        n = next(iter(cdc.cut_buf(buf))).length
        # FastCDC's cut depends only on the bytes before it, but a cut at the very end
        # of the window may just be where the window ends: then look further. A window
        # of at least the average size keeps its normalisation the same as a stream's.
        if at + len(buf) < end and len(buf) < cutting.max and n >= len(buf) - _WINDOW_MARGIN:
            want = min(2 * want, cutting.max)
            continue
        yield buf[:n]
        buf, at, want = buf[n:], at + n, 2 * cutting.avg


_WINDOW_MARGIN = 64


def _merge(base: Iterator[Entry], changes: Iterable[tuple[str, Change | None]], rel: str):
    """(name, base entry, change, changed?) in name order over a base listing and changes."""
    changes = iter(changes)
    old = next(base, None)
    last = None
    for name, change in changes:
        if last is not None and name <= last:
            raise ValueError(f"changes of {rel or '/'} are not in strictly increasing name order")
        last = name
        _check_name(name, rel)
        while old is not None and old.name < name:
            yield old.name, old, None, False
            old = next(base, None)
        if old is not None and old.name == name:
            yield name, old, change, True
            old = next(base, None)
        else:
            yield name, None, change, True
    while old is not None:
        yield old.name, old, None, False
        old = next(base, None)


def _check_name(name: str, rel: str) -> None:
    where = f"{rel}/{name}" if rel else name
    problem = rules.name_problem(name)
    if problem:
        shown = where.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise CommitError(f"file name {shown!r} cannot be stored ({problem}); rename it, "
                          "then commit again")


def _refuse(problem: rules.Problem | None, what: str) -> None:
    if problem:
        shown = what.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise CommitError(f"{shown}: {problem}; change or remove it, then commit again")


# -- bundles -----------------------------------------------------------------


@dataclass
class CommitResult:
    bundle: Bundle | None  # None: nothing changed, nothing was written
    parent: Bundle | None
    head_before: str | None  # the branch head just before this commit moved it
    stats: CommitStats

    @property
    def forked(self) -> bool:
        """The branch had moved past the parent: both bundles stay in the branch log."""
        if self.bundle is None or self.head_before is None:
            return False
        return self.head_before != (self.parent.id if self.parent else None)


def bundle_id(bundle: Bundle) -> str:
    return address(encode(bundle.to_obj()))


def prepare(repo: Repository, repo_name: str, parent: Bundle | None, root: NewDir | Keep,
            message: str, author: Author, on_entry: OnEntry | None = None,
            progress: Callable[[int], None] | None = None,
            provenance: Provenance = NO_PROVENANCE, allow_empty: bool = False,
            ) -> tuple[Bundle | None, CommitStats]:
    """Store every chunk and tree of the new content; the bundle to record (with its
    id and what it was made from), or None when the tree equals the parent's (or is
    empty, without a parent) unless `allow_empty`. Nothing names it yet. `progress` is
    told the bytes cut as they are."""
    job = TreeCommit(repo, on_entry, progress=progress)
    entry = job.build(root)
    if not allow_empty and parent is not None and entry.tree == parent.tree:
        return None, job.stats
    if (not allow_empty and parent is None and entry.files == 0
            and not any(repo.trees.entries(entry.tree))):
        return None, job.stats
    bundle = Bundle(repo=repo_name, tree=entry.tree, parents=(parent.id,) if parent else (),
                    message=message, author_name=author.name, author_email=author.email,
                    time=time.time_ns(), files=entry.files, bytes=entry.size,
                    inputs=provenance.inputs, process=provenance.process)
    return Bundle(**{**bundle.__dict__, "id": bundle_id(bundle)}), job.stats


def publish(repo: Repository, bundle: Bundle, branch: str, author: Author,
            label: str | None = None) -> str | None:
    """Record a prepared bundle and move the branch (and label) to it. Idempotent: a
    re-run after a crash adds at most another ref record. Returns the head before."""
    repo.write_bundle(bundle)
    head = repo.ref_head(bundle.repo, BRANCH, branch)
    if head is None or head.bundle != bundle.id:
        repo.append_ref(bundle.repo, BRANCH, branch, bundle.id, author)
    if label:
        repo.append_ref(bundle.repo, LABEL, label, bundle.id, author)
    return head.bundle if head else None


def commit(repo: Repository, repo_name: str, branch: str, parent: Bundle | None,
           root: NewDir | Keep, message: str, author: Author, label: str | None = None,
           on_entry: OnEntry | None = None, provenance: Provenance = NO_PROVENANCE,
           allow_empty: bool = False, progress: Callable[[int], None] | None = None,
           ) -> CommitResult:
    """prepare + publish: the new bundle on `branch`, whose parent is `parent` (what
    uploads and the Python API's new bundles do). When its tree equals the parent's (see
    prepare) no bundle is made and `label` is set to the parent."""
    check_name(branch, "branch name")
    if label is not None:
        check_name(label, "label name")
    bundle, stats = prepare(repo, repo_name, parent, root, message, author, on_entry, progress,
                            provenance, allow_empty)
    if bundle is None:
        if label and parent is not None:
            repo.set_label(repo_name, label, parent.id, author)
        return CommitResult(None, parent, None, stats)
    head = publish(repo, bundle, branch, author, label)
    return CommitResult(bundle, parent, head, stats)


def empty_dir(mode: int = 0o755, mtime: int = 0) -> NewDir:
    return NewDir(mode, mtime, None, _empty_changes)


__all__ = ["Change", "CommitError", "CommitResult", "CommitStats", "Keep", "NewDir", "NewFile",
           "NewLink", "TreeCommit", "bundle_id", "commit", "empty_dir", "prepare", "publish"]
