"""Download a bundle into a local directory.

Everything read from the store is untrusted. The walk checks the bundle's rules
as it goes (core.rules, through TreeReader.walk: names, link targets, totals,
depth), and every chunk is verified against its address by the chunk reader.

Nothing is written through a path string: each directory is created and opened
relative to its parent's descriptor with O_NOFOLLOW, and files and links are
created relative to their directory's descriptor, then renamed into place. So
whatever the metadata says, and whatever links the destination already holds,
no write can be redirected outside the destination. A file appears under its
real name only once all its bytes are written and verified. Setuid and setgid
bits are never given to what is written. Extended attributes are written when
the destination takes them, and counted as skipped when it does not.

Downloads resume: DEST holds a marker naming the bundle until the download is
complete, so running it again (or with `resume`) keeps every file already there
whose bytes hash to the bundle's chunk addresses and writes only the others. With
`delete`, what DEST holds that the bundle does not is removed (as `rclone sync`).

Chunks are fetched ahead of the writer in batches that may span many small files,
so that neighbouring chunks of a pack come with one request (`_Ahead`).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from ..errors import AlreadyExists, DatamonError, IntegrityError, StoreUnavailable
from . import rules
from .chunks import MAX_RUN, ChunkReader, ChunkRef, take_batch
from .encoding import address
from .globs import matcher
from .model import DIR, FILE, Bundle, Entry
from .repository import Repository

READ_AHEAD = 32 << 20  # bytes fetched ahead of the writer
FETCHERS = 8  # batches fetched at once
WRITE_BYTES = 1 << 20  # a file's chunks are written in pieces of about this (64 KiB each: 16 per write)
PENDING_FILES = 256  # files whose chunks are being fetched, not written yet
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MARKER = ".datamonfs-download"  # in DEST while a download is not complete: its bundle
_TEMP = re.compile(r"\.datamonfs-[0-9a-f]{12}")  # a file being written (left by a kill)


@dataclass
class DownloadStats:
    files: int = 0
    bytes: int = 0  # bytes written
    kept: int = 0  # files already complete in DEST, verified and kept
    kept_bytes: int = 0
    deleted: int = 0  # entries of DEST the bundle does not have, removed (`delete`)
    xattrs_skipped: int = 0  # the destination refused them (no support, or too large)


# What a destination answers for attributes it cannot keep: none at all (ENOTSUP), or
# not this many or this large (ext4 keeps one entry's in a single block: ENOSPC, E2BIG).
_XATTRS_REFUSED = (errno.ENOTSUP, errno.EOPNOTSUPP, errno.E2BIG, errno.ENOSPC, errno.ERANGE,
                   errno.EPERM)


def download(repo: Repository, bundle: Bundle, dest: str, reader: ChunkReader | None = None,
             name_filter: str | None = None, resume: bool = False, delete: bool = False,
             progress: Callable[[int], None] | None = None) -> DownloadStats:
    """Write the bundle's files under `dest` (all of them, or the paths matching the glob
    `name_filter`, see core.globs). A non-empty `dest` is refused unless `resume`, or it
    holds an interrupted download of this bundle; files already there and verified are
    kept. `delete` removes what `dest` holds that the bundle does not."""
    if delete and name_filter:
        raise DatamonError("--delete removes what the bundle does not hold; it cannot be "
                           "combined with --filter")
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise AlreadyExists(f"{dest} exists and is not a directory")
    interrupted = _marked_bundle(dest)
    if os.path.isdir(dest) and set(os.listdir(dest)) - {MARKER} and not resume:
        if interrupted != bundle.id:
            raise AlreadyExists(f"{dest} is not empty; pass --resume to write into it (files "
                                "already complete are kept)")
    resume = resume or interrupted == bundle.id
    os.makedirs(dest, exist_ok=True)
    stats = DownloadStats()
    root = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _mark(root, bundle)
        try:
            with ThreadPoolExecutor(FETCHERS, thread_name_prefix="download") as pool:
                job = _Download(repo, _Ahead(reader or repo.chunks, pool), dest, root, stats,
                                progress)
                job.resume, job.delete = resume, delete
                job.run(bundle, name_filter)
        except (StoreUnavailable, KeyboardInterrupt):
            raise  # worth resuming: the marker stays
        except BaseException:
            _unlink_marker(root)  # refused (a hostile bundle, a conflict): running again won't help
            raise
        _unlink_marker(root)
    finally:
        os.close(root)
    return stats


def _marked_bundle(dest: str) -> str | None:
    """The bundle an interrupted download into `dest` was of, if any."""
    try:
        with open(os.path.join(dest, MARKER), "rb") as f:
            value = json.loads(f.read(4096)).get("bundle")
        return value if isinstance(value, str) else None
    except (OSError, ValueError, AttributeError):
        return None


def _unlink_marker(root: int) -> None:
    try:
        os.unlink(MARKER, dir_fd=root)
    except FileNotFoundError:
        pass


def _mark(root: int, bundle: Bundle) -> None:
    fd = os.open(MARKER, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600, dir_fd=root)
    try:
        os.write(fd, json.dumps({"repo": bundle.repo, "bundle": bundle.id}).encode())
    finally:
        os.close(fd)


class _OpenDir:
    """A directory of the bundle on the way down: created (and opened) only when
    something is written into it, or at once without a name filter."""

    __slots__ = ("path", "entry", "fd", "names")

    def __init__(self, path: str, entry: Entry | None, fd: int | None):
        self.path, self.entry, self.fd = path, entry, fd
        self.names: set[str] = set()  # its entries in the bundle (kept by `delete`)


class _Ahead:
    """The chunks of the files to write, in order, fetched ahead of the writer in batches
    (core.chunks.take_batch), at most READ_AHEAD bytes fetched and not yet taken. A chunk
    that fails is reported when it is taken, so the error names the file it belongs to.

    A batch is sent when it is full (MAX_RUN bytes of chunks queued) or when the writer
    waits for its first chunk: sending each small file's chunk as soon as it was queued
    made every batch one chunk, so 10,000 small files cost 10,000 ranged reads of the
    store, block files and cache transactions instead of about a hundred."""

    def __init__(self, reader: ChunkReader, pool: ThreadPoolExecutor):
        self.reader, self.pool = reader, pool
        self.queued: deque[ChunkRef] = deque()  # not sent for yet
        self.queued_bytes = 0
        self.batches: deque[Future] = deque()  # sent for, in order
        self.ready: deque = deque()  # of the oldest batch: bytes, or the error of a chunk
        self.ahead = 0  # bytes sent for and not taken

    @property
    def full(self) -> bool:
        """As much is fetched ahead as may be: the writer should take some."""
        return self.ahead >= READ_AHEAD

    def add(self, refs: list[ChunkRef]) -> None:
        self.queued.extend(refs)
        self.queued_bytes += sum(ref.size for ref in refs)
        self._send(whole_batches=True)

    def _send(self, whole_batches: bool = False) -> None:
        while self.queued and self.ahead < READ_AHEAD and (
                not whole_batches or self.queued_bytes >= MAX_RUN):
            batch = take_batch(self.queued)
            size = sum(ref.size for ref in batch)
            self.queued_bytes -= size
            self.batches.append(self.pool.submit(self._fetch, batch))
            self.ahead += size

    def _fetch(self, batch: list[ChunkRef]) -> list:
        try:
            return self.reader.read_chunks(batch)
        except IntegrityError:  # which chunk? each on its own, keeping the errors
            out: list = []
            for ref in batch:
                try:
                    out.append(self.reader.read_chunk(ref))
                except IntegrityError as e:
                    out.append(e)
            return out

    def take(self) -> bytes:
        """The next chunk's bytes."""
        if not self.ready:
            if not self.batches:
                self._send()  # the writer waits for chunks of a batch not yet full
            self.ready.extend(self.batches.popleft().result())
        data = self.ready.popleft()
        if isinstance(data, BaseException):
            raise data
        self.ahead -= len(data)
        self._send(whole_batches=True)
        return data

    def cancel(self) -> None:
        self.queued.clear()
        self.queued_bytes = 0
        for future in self.batches:
            future.cancel()


class _Download:
    def __init__(self, repo: Repository, ahead: _Ahead, dest: str, root: int,
                 stats: DownloadStats, progress):
        self.repo, self.ahead = repo, ahead
        self.dest, self.stats, self.progress = dest, stats, progress
        self.stack = [_OpenDir("", None, root)]  # the root's descriptor belongs to download()
        self.pending: deque[tuple[int, str, Entry, int]] = deque()  # files being fetched
        self.stack[0].names.add(MARKER)
        self.resume = self.delete = False

    def run(self, bundle: Bundle, name_filter: str | None) -> None:
        wanted = matcher(name_filter)
        try:
            for path, entry in self.repo.walk(bundle):
                self.leave_until(path)
                self.stack[-1].names.add(entry.name)
                if entry.kind == DIR:
                    self.stack.append(_OpenDir(path, entry, None))
                    if name_filter is None:
                        self.opened()
                elif name_filter is None or wanted(path):
                    parent = self.opened()
                    if entry.kind == FILE:
                        self.queue_file(parent, path, entry)
                    else:
                        self.link(parent, path, entry)
                    self.stats.files += 1
            self.write_pending()
            self.leave_until("")
            self.tidy(self.stack[0])
        finally:
            self.ahead.cancel()
            for d in self.stack[1:]:
                if d.fd is not None:
                    os.close(d.fd)

    def queue_file(self, parent: int, path: str, entry: Entry) -> None:
        """Send for a file's chunks (unless DEST holds it already, resuming); write the
        oldest files while too many are waiting."""
        refs = self.repo.trees.chunks(entry)
        if self.resume and self.complete(parent, entry, refs):
            self.stats.kept += 1
            self.stats.kept_bytes += entry.size
            if self.progress:
                self.progress(entry.size)
            return
        self.ahead.add(refs)
        self.pending.append((parent, path, entry, len(refs)))
        while self.pending and (len(self.pending) > PENDING_FILES or self.ahead.full):
            self.file(*self.pending.popleft())

    def write_pending(self) -> None:
        while self.pending:
            self.file(*self.pending.popleft())

    def leave_until(self, path: str) -> None:
        """Finish the directories that do not hold `path`: modes and times last, since
        writing into a directory changes its mtime."""
        if len(self.stack) > 1 and not path.startswith(self.stack[-1].path + "/"):
            self.write_pending()  # files still to be written into them
        while len(self.stack) > 1 and not path.startswith(self.stack[-1].path + "/"):
            d = self.stack.pop()
            if d.fd is not None:
                try:
                    self.tidy(d)
                    self.set_xattrs(d.fd, d.entry)
                    os.fchmod(d.fd, rules.safe_mode(d.entry.mode) | 0o700)
                    os.utime(d.fd, ns=(d.entry.mtime, d.entry.mtime))
                finally:
                    os.close(d.fd)

    def tidy(self, d: _OpenDir) -> None:
        """What a directory of DEST holds besides the bundle's entries: temp files of a
        killed download (resuming) and, with `delete`, everything else."""
        if not (self.resume or self.delete):
            return
        for name in os.listdir(d.fd):
            if name in d.names or not (self.delete or _TEMP.fullmatch(name)):
                continue
            try:
                if os.stat(name, dir_fd=d.fd, follow_symlinks=False).st_mode & 0o170000 == 0o040000:
                    shutil.rmtree(name, dir_fd=d.fd)
                else:
                    os.unlink(name, dir_fd=d.fd)
            except FileNotFoundError:
                continue
            except OSError as e:
                raise self.cannot(os.path.join(d.path, name), e) from None
            self.stats.deleted += not _TEMP.fullmatch(name)

    def opened(self) -> int:
        """The descriptor of the innermost directory, creating those not made yet."""
        for i, d in enumerate(self.stack):
            if d.fd is None:
                d.fd = self.open_dir(self.stack[i - 1].fd, d.path, d.entry.name)
        return self.stack[-1].fd

    def open_dir(self, parent: int, path: str, name: str) -> int:
        try:
            os.mkdir(name, 0o700, dir_fd=parent)
        except FileExistsError:
            pass  # --force into an earlier download: use it, if it is a real directory
        except OSError as e:
            raise self.cannot(path, e) from None
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise DatamonError(f"{os.path.join(self.dest, path)} is a symlink or a file in "
                                   "the destination but a directory in the bundle; remove it or "
                                   "download into an empty directory") from None
            raise self.cannot(path, e) from None

    def cannot(self, path: str, e: OSError) -> DatamonError:
        return DatamonError(f"cannot write {os.path.join(self.dest, path)}: "
                            f"{e.strerror or e}")

    def complete(self, parent: int, entry: Entry, chunks: list[ChunkRef]) -> bool:
        """Whether DEST already holds this file, every chunk's bytes hashing to its
        address (then only its mode and time are set)."""
        try:
            fd = os.open(entry.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                         dir_fd=parent)
        except OSError:
            return False
        try:
            st = os.fstat(fd)
            if st.st_mode & 0o170000 != 0o100000 or st.st_size != entry.size:
                return False
            for ref in chunks:
                if address(os.read(fd, ref.size)) != ref.addr:
                    return False
            self.set_xattrs(fd, entry)
            os.fchmod(fd, rules.safe_mode(entry.mode))
            os.utime(fd, ns=(entry.mtime, entry.mtime))
            return True
        finally:
            os.close(fd)

    def file(self, parent: int, path: str, entry: Entry, chunks: int) -> None:
        def write(fd: int) -> None:
            left = chunks
            while left:  # chunks gathered into writes of about WRITE_BYTES: one syscall each
                parts, size = [], 0
                while left and size < WRITE_BYTES:
                    try:
                        data = self.ahead.take()
                    except IntegrityError as e:
                        raise IntegrityError(f"{path}: {e}") from None
                    parts.append(data)
                    size += len(data)
                    left -= 1
                _write_all(fd, parts)
                self.stats.bytes += size
                if self.progress:
                    self.progress(size)
            self.set_xattrs(fd, entry)
            os.fchmod(fd, rules.safe_mode(entry.mode))
            os.utime(fd, ns=(entry.mtime, entry.mtime))

        self.place(parent, path, entry.name, write)

    def set_xattrs(self, fd: int, entry: Entry) -> None:
        for name, value in entry.xattrs:
            try:
                os.setxattr(fd, name, value)
            except OSError as e:
                if e.errno not in _XATTRS_REFUSED:
                    raise
                self.stats.xattrs_skipped += 1

    def link(self, parent: int, path: str, entry: Entry) -> None:
        def make(tmp: str) -> None:
            os.symlink(entry.target, tmp, dir_fd=parent)
            os.utime(tmp, ns=(entry.mtime, entry.mtime), dir_fd=parent, follow_symlinks=False)

        self.place(parent, path, entry.name, None, make)

    def place(self, parent: int, path: str, name: str, write=None, make=None) -> None:
        """Create a temp file (or link) beside `name`, then rename it over `name`."""
        tmp = f".datamonfs-{os.urandom(6).hex()}"
        try:
            if write is not None:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o600, dir_fd=parent)
                try:
                    write(fd)
                finally:
                    os.close(fd)
            else:
                make(tmp)
            os.rename(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException as e:
            try:
                os.unlink(tmp, dir_fd=parent)
            except OSError:
                pass
            if isinstance(e, OSError) and e.errno in (errno.EISDIR, errno.ENOTEMPTY):
                raise DatamonError(f"{os.path.join(self.dest, path)} is a directory in the "
                                   "destination but a file in the bundle; remove it or download "
                                   "into an empty directory") from None
            if isinstance(e, OSError):
                raise self.cannot(path, e) from None
            raise


def _write_all(fd: int, parts: list) -> None:
    """All of `parts` at the file's offset, in as few writev calls as the kernel allows."""
    views = [memoryview(p) for p in parts if len(p)]
    while views:
        n = os.writev(fd, views)
        while views and n >= len(views[0]):
            n -= len(views[0])
            views.pop(0)
        if n:
            views[0] = views[0][n:]
