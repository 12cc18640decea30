"""Download a bundle into a local directory.

Everything read from the store is untrusted: entry names were checked when the
tree was parsed, symlink targets are checked here (absolute targets and targets
that climb out of the destination are refused), and every chunk is verified
against its address by the chunk reader. A file appears under its real name
only once all its bytes are written and verified.
"""

from __future__ import annotations

import fnmatch
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator

from ..errors import AlreadyExists, DatamonError, IntegrityError
from .chunks import ChunkReader
from .model import DIR, FILE, LINK, Bundle, Entry
from .repository import Repository

READ_AHEAD = 8  # chunks fetched ahead of the writer


@dataclass
class DownloadStats:
    files: int = 0
    bytes: int = 0


def check_link_target(path: str, target: str) -> None:
    resolved = os.path.normpath(os.path.join(os.path.dirname(path), target))
    if os.path.isabs(target) or resolved == ".." or resolved.startswith("../"):
        raise IntegrityError(f"refusing symlink {path} -> {target}: it points outside the bundle")


def download(repo: Repository, bundle: Bundle, dest: str, reader: ChunkReader | None = None,
             name_filter: str | None = None, force: bool = False,
             progress: Callable[[int], None] | None = None) -> DownloadStats:
    reader = reader or repo.chunks
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise AlreadyExists(f"{dest} exists and is not a directory")
    if os.path.isdir(dest) and os.listdir(dest) and not force:
        raise AlreadyExists(f"{dest} is not empty; pass --force to write into it")
    os.makedirs(dest, exist_ok=True)
    stats = DownloadStats()
    with ThreadPoolExecutor(READ_AHEAD, thread_name_prefix="download") as pool:
        job = _Download(repo, reader, pool, dest, name_filter, stats, progress)
        job.directory(bundle.tree, "")
    return stats


class _Download:
    def __init__(self, repo, reader, pool, dest, name_filter, stats, progress):
        self.repo, self.reader, self.pool = repo, reader, pool
        self.dest, self.name_filter, self.stats, self.progress = dest, name_filter, stats, progress

    def wanted(self, path: str) -> bool:
        return self.name_filter is None or fnmatch.fnmatchcase(path, self.name_filter)

    def directory(self, tree: str, rel: str) -> None:
        dirs = []
        for entry in self.repo.trees.entries(tree, f"directory {rel or '/'}"):
            path = f"{rel}/{entry.name}" if rel else entry.name
            if entry.kind == DIR:
                if self.name_filter is None:
                    self.make_dir(path)
                self.directory(entry.tree, path)
                dirs.append((path, entry))
            elif self.wanted(path):
                self.make_parent(path)
                if entry.kind == FILE:
                    self.file(path, entry)
                else:
                    self.link(path, entry)
                self.stats.files += 1
        # Directory modes and times last: writing into a directory changes its mtime.
        for path, entry in dirs:
            full = os.path.join(self.dest, path)
            if os.path.isdir(full) and not os.path.islink(full):
                os.chmod(full, entry.mode | 0o700)
                os.utime(full, ns=(entry.mtime, entry.mtime))

    def make_dir(self, path: str) -> None:
        full = os.path.join(self.dest, path)
        if os.path.islink(full):
            raise IntegrityError(f"refusing to write into {path}: it is a symlink in the destination")
        os.makedirs(full, exist_ok=True)

    def make_parent(self, path: str) -> None:
        self.make_dir(os.path.dirname(path))

    def link(self, path: str, entry: Entry) -> None:
        check_link_target(path, entry.target)
        full = os.path.join(self.dest, path)
        _remove_existing(full)
        os.symlink(entry.target, full)
        os.utime(full, ns=(entry.mtime, entry.mtime), follow_symlinks=False)

    def chunk_data(self, path: str, chunks) -> Iterator[bytes]:
        """The file's chunks in order, fetched up to READ_AHEAD ahead."""
        pending = []
        it = iter(chunks)
        for addr, size in it:
            pending.append(self.pool.submit(self.reader.read_chunk, addr, size))
            if len(pending) >= READ_AHEAD:
                break
        while pending:
            future = pending.pop(0)
            nxt = next(it, None)
            if nxt:
                pending.append(self.pool.submit(self.reader.read_chunk, *nxt))
            try:
                yield future.result()
            except IntegrityError as e:
                for f in pending:
                    f.cancel()
                raise IntegrityError(f"{path}: {e}") from None

    def file(self, path: str, entry: Entry) -> None:
        full = os.path.join(self.dest, path)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(full), prefix=".datamonfs-")
        try:
            with os.fdopen(fd, "wb") as f:
                for data in self.chunk_data(path, self.repo.trees.chunks(entry)):
                    f.write(data)
                    self.stats.bytes += len(data)
                    if self.progress:
                        self.progress(len(data))
            os.chmod(tmp, entry.mode)
            os.utime(tmp, ns=(entry.mtime, entry.mtime))
            _remove_existing(full)
            os.rename(tmp, full)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise


def _remove_existing(full: str) -> None:
    if os.path.islink(full) or os.path.isfile(full):
        os.unlink(full)
    elif os.path.isdir(full):
        raise DatamonError(f"{full} is a directory in the destination but a file in the bundle; "
                           "remove it or download into an empty directory")
