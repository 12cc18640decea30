"""Upload a local directory as a new bundle.

Files are read once, cut into chunks and hashed in this thread; the kernel is asked to
read small files a few dozen entries ahead (readahead.py), so that reads from disk
overlap. A chunk the store holds already (its pack indexes say so, see packs.py) or
that this upload placed already is not sent again; a new one is appended to the open
pack, and sealed packs are stored on a bounded pool while the next one fills, so memory
stays at a few packs.
Directories are written bottom-up, one directory's entries in memory at a time. The
bundle record and its refs are written last, after every pack and its index, so a
killed upload leaves no bundle, and a re-run uploads only the chunks still missing.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from ..errors import DatamonError, NotFound
from . import rules
from .chunks import ChunkRef, cut
from .encoding import address
from .model import DIR, FILE, LINK, NO_PROVENANCE, Bundle, Entry, Provenance, Xattrs
from .names import DEFAULT_BRANCH
from .packs import PackIndex, PackWriter
from .readahead import ReadAhead
from .repository import BRANCH, LABEL, Author, Repository
from .trees import DirectoryBuilder, file_entry

Progress = Callable[[int], None]
LOOKAHEAD = 64  # entries of a directory looked at (lstat, small files read) before their turn


@dataclass
class UploadStats:
    files: int = 0
    bytes: int = 0
    chunks: int = 0
    chunks_uploaded: int = 0
    bytes_uploaded: int = 0
    packs: int = 0


@dataclass
class IngestStats(UploadStats):
    new_bundle: bool = True  # False: the folder equals the branch head, no bundle was made


class ChunkUploader:
    """Gives every chunk of an upload (or commit) its place: where the store holds it
    already, or in a new pack. The first failure to store a pack is raised by `add` or
    `finish`. Call `repo.refresh_locations()` first."""

    def __init__(self, repo: Repository, stats: UploadStats):
        self.locations = repo.locations
        self.stats = stats
        self.lock = threading.Lock()
        self.placed: dict[str, ChunkRef] = {}  # in this upload's packs not stored yet
        self.packs = PackWriter(repo.chunks, self._stored)

    def add(self, data: bytes | memoryview) -> ChunkRef:
        addr = address(data)
        self.stats.chunks += 1
        with self.lock:
            ref = self.placed.get(addr)
        if ref is None:
            ref = self.locations.find(addr)
        if ref is None:
            ref = self.packs.add(addr, data)
            with self.lock:
                self.placed[addr] = ref
            self.stats.chunks_uploaded += 1
            self.stats.bytes_uploaded += len(data)
        return ref

    def _stored(self, index: PackIndex) -> None:
        """A pack and its index are stored (in a pack-upload thread): its chunks are found
        in the locations from now on, by this upload and the next ones."""
        self.locations.add(index)
        with self.lock:
            for addr, _, _ in index.chunks:
                self.placed.pop(addr, None)

    def finish(self) -> None:
        try:
            self.packs.finish()
        finally:
            self.stats.packs = self.packs.packs

    def abort(self) -> None:
        self.packs.abort()


class DirectoryUpload:
    def __init__(self, repo: Repository, root: str, progress: Progress | None):
        self.repo = repo
        self.root = root
        self.progress = progress
        self.stats = IngestStats()
        self.chunks = ChunkUploader(repo, self.stats)
        self.reads = ReadAhead()  # files opened ahead of the walk; closed when `run` ends
        self.dirs = 0

    def run(self) -> Entry:
        try:
            st = os.stat(self.root)
            entry = self._directory(self.root, "", "", st)
            self.chunks.finish()
        except BaseException:
            self.chunks.abort()
            raise
        finally:
            self.reads.close()
        if self.dirs > entry.files + rules.MAX_EXTRA_DIRS:
            raise DatamonError(f"the folder holds {self.dirs} directories for {entry.files} "
                               "files; datamonfs stores at most "
                               f"{rules.MAX_EXTRA_DIRS} more directories than files")
        return entry

    def _directory(self, path: str, rel: str, name: str, st: os.stat_result) -> Entry:
        builder = DirectoryBuilder(self.repo.objects)
        self.dirs += 1
        try:
            names = sorted(os.listdir(path))
        except OSError as e:
            raise _unreadable(rel or ".", e) from None
        for child, child_path, cst in self._looked_ahead(path, names):
            child_rel = f"{rel}/{child}" if rel else child
            _check(rules.name_problem(child), child_rel, "file name")
            _check(rules.depth_problem(child_rel.count("/") + 1), child_rel, "path")
            if isinstance(cst, OSError):
                raise _unreadable(child_rel, cst)
            builder.add(self._entry(child_path, child_rel, child, cst))
        return builder.dir_entry(name, stat.S_IMODE(st.st_mode), st.st_mtime_ns,
                                 _xattrs(path, rel, DIR) if rel else ())

    def _looked_ahead(self, path: str, names: list[str]
                      ) -> Iterator[tuple[str, str, os.stat_result | OSError]]:
        """(name, path, lstat or its error) of each child in order, each looked at LOOKAHEAD
        children before its turn: a small regular file is then given to the read-ahead.
        Errors are the walk's when it reaches them, so it fails where it did before."""
        window: deque[tuple[str, str, os.stat_result | OSError]] = deque()
        for child in names:
            child_path = os.path.join(path, child)
            try:
                cst: os.stat_result | OSError = os.lstat(child_path)
            except OSError as e:
                cst = e
            else:
                if stat.S_ISREG(cst.st_mode):
                    self.reads.ahead(child_path, cst.st_size)
            window.append((child, child_path, cst))
            if len(window) > LOOKAHEAD:
                yield window.popleft()
        yield from window

    def _entry(self, path: str, rel: str, name: str, st: os.stat_result) -> Entry:
        mode, mtime = stat.S_IMODE(st.st_mode), st.st_mtime_ns
        if stat.S_ISDIR(st.st_mode):
            return self._directory(path, rel, name, st)
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(path)
            _check(rules.link_problem(target, rules.depth_of(rel)), f"{rel} -> {target}",
                   "symlink")
            self.stats.files += 1
            return Entry(name, LINK, mode, mtime, len(target.encode()), target=target)
        if stat.S_ISREG(st.st_mode):
            chunks = self._file(path, rel)
            self.stats.files += 1
            return file_entry(self.repo.objects, name, mode, mtime, chunks,
                              _xattrs(path, rel, FILE))
        raise DatamonError(f"{rel} is not a regular file, directory or symlink; "
                           "move it out of the folder (nothing was uploaded)")

    def _file(self, path: str, rel: str) -> list[ChunkRef]:
        try:
            f = self.reads.take(path) or open(path, "rb", buffering=0)
        except OSError as e:
            raise _unreadable(rel, e) from None
        with f:
            # Only reading the file blames it; a store that fails (full, unreachable)
            # says so itself.
            return self._add(cut(_Source(f, rel)))

    def _add(self, pieces: Iterable[bytes | memoryview]) -> list[ChunkRef]:
        chunks = []
        for data in pieces:
            chunks.append(self.chunks.add(data))
            self.stats.bytes += len(data)
            if self.progress:
                self.progress(len(data))
        return chunks


class _Source:
    """A file being uploaded, whose read errors name it."""

    def __init__(self, f, rel: str):
        self.f, self.rel = f, rel

    def read(self, n: int) -> bytes:
        try:
            return self.f.read(n)
        except OSError as e:
            raise _unreadable(self.rel, e) from None


# What a file system without extended attributes, or without any on this file, answers.
_NO_XATTRS = (errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA)


def _xattrs(path: str, rel: str, kind: str) -> Xattrs:
    """The user.* attributes of a file or directory (others are not kept: core/rules.py).
    `user.datamonfs.*` is what a read-only mount says about itself: not the file's."""
    try:
        names = [n for n in os.listxattr(path, follow_symlinks=False)
                 if n.startswith("user.") and not n.startswith("user.datamonfs.")]
        pairs = []
        for name in sorted(names):
            try:
                pairs.append((name, os.getxattr(path, name, follow_symlinks=False)))
            except OSError as e:
                if e.errno != errno.ENODATA:  # removed meanwhile
                    raise
    except OSError as e:
        if e.errno in _NO_XATTRS:
            return ()
        raise _unreadable(rel, e) from None
    xattrs = tuple(pairs)
    _check(rules.xattrs_problem(kind, xattrs), rel, "extended attributes of")
    return xattrs


def _unreadable(rel: str, e: OSError) -> DatamonError:
    return DatamonError(f"cannot read {rel}: {e.strerror or e}; fix it or move it out of the "
                        "folder (nothing was uploaded)")


def _check(problem: rules.Problem | None, what: str, kind: str) -> None:
    if problem is not None:
        shown = what.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise DatamonError(f"{kind} {shown}: {problem}; change it or move it out of the folder "
                           "(nothing was uploaded)")


def scan_size(root: str) -> int:
    """Bytes of the regular files below root (for a progress bar's total)."""
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


def check_target(repo: Repository, repo_name: str, branch: str, label: str | None) -> None:
    """Before anything is stored: the repo exists, and the branch and label names are
    free for their kind (a branch may not take a label's name, nor a label a branch's)."""
    repo.get_repo(repo_name)
    repo.check_ref_name(repo_name, BRANCH, branch)
    if label is not None:
        repo.check_ref_name(repo_name, LABEL, label)


def check_folder(source: str) -> str:
    """A folder to upload: its absolute path (NotFound, or a user error for a file)."""
    if not os.path.isdir(source):
        if os.path.exists(source):
            raise DatamonError(f"{source} is not a directory; upload the folder that holds it")
        raise NotFound(f"no directory {source!r} to upload")
    return os.path.abspath(source)


def upload(repo: Repository, repo_name: str, source: str, message: str, author: Author,
           branch: str = DEFAULT_BRANCH, label: str | None = None,
           progress: Progress | None = None, allow_empty: bool = False,
           provenance: Provenance = NO_PROVENANCE) -> tuple[Bundle, IngestStats]:
    """Upload `source` as a new bundle on `branch`, optionally labelled, recording what it
    was made from. A folder equal to the branch head makes no bundle unless `allow_empty`
    (as a commit with nothing staged): the head is returned, with stats.new_bundle False
    (and the label set to it)."""
    from .commit import Keep, commit  # commit builds on this module's uploader

    check_target(repo, repo_name, branch, label)
    job = DirectoryUpload(repo, check_folder(source), progress)
    head = repo.ref_head(repo_name, BRANCH, branch)
    repo.refresh_locations()
    root = job.run()
    parent = repo.get_bundle(repo_name, head.bundle) if head else None
    result = commit(repo, repo_name, branch, parent, Keep(root), message, author, label,
                    provenance=provenance, allow_empty=allow_empty or parent is None)
    job.stats.new_bundle = result.bundle is not None
    return result.bundle or parent, job.stats
