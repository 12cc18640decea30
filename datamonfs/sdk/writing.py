"""`NewBundle`: writing a bundle from Python.

    with repo.new_bundle(branch="main", message="cleaned", label="v2",
                         inputs=[raw], process="dropped empty rows") as b:
        b.write_bytes("clean/a.csv", data)
        b.put_file("/tmp/model.pt", "models/model.pt")
        b.put_dir("./reports", "reports")
        b.remove("old.csv")
        with b.open("notes.txt", "wb") as f: f.write(b"...")
    b.bundle                                   # the new Bundle (or the head, if unchanged)

Content is cut into chunks and uploaded as it is given (at most 16 chunks in flight),
so a file is never held whole: `open(path, "wb")` spools what is written in memory up
to 8 MiB, then in a temp file, and cuts it when closed. What is kept until the end is
each written path's entry (its chunk list: some hundred bytes a file) in a tree of the
changes. When the block ends normally the changes become a new bundle with the commit
machinery a writable mount uses (core/commit.py): directories nobody wrote into keep
their tree address unread, so a bundle that changes one file of a million costs what
that file costs. When the block raises, nothing is recorded: no bundle, no ref. Chunks
already uploaded stay in the store unreferenced, as after an interrupted upload
(harmless; a later upload of the same bytes reuses them).

Two NewBundles on one branch at once both become bundles, as two uploads do: each one's
parent is the head when it started, the later ref record is the head, and the branch's
log keeps both.
"""

from __future__ import annotations

import io
import os
import socket
import stat
import sys
import tarfile
import tempfile
import threading
import time
from typing import TYPE_CHECKING, BinaryIO, Callable, Union

from ..core import rules
from ..core.chunks import cut
from ..core.commit import Keep, commit
from ..core.ingest import ChunkUploader, DirectoryUpload, UploadStats, check_folder, check_target
from ..core.model import DIR, LINK, PROCESS_TEXTS, Entry, Input, Process, Provenance
from ..core.repository import BRANCH
from ..core.trees import file_entry
from ..errors import DatamonError, IntegrityError, InvalidPath, IsADirectory, PathNotFound
from .paths import split_path
from .staging import Changes, is_dir

if TYPE_CHECKING:
    from .bundle import Bundle
    from .store import Store

ProcessLike = Union[Process, dict, str, None]
SPOOL_MEMORY = 8 << 20  # bytes `open(path, "wb")` keeps in memory before a temp file


def make_process(value: ProcessLike) -> Process | None:
    """What `process=` may be: a Process; a dict of its fields (command, host, notebook,
    code_version, description); a text, the description. The command defaults to this
    process's command line (sys.argv) and the host to this machine's name."""
    if value is None or isinstance(value, Process):
        process = value
    else:
        fields = {"description": value} if isinstance(value, str) else dict(value)
        unknown = set(fields) - {"command", *PROCESS_TEXTS}
        if unknown:
            raise DatamonError(f"process: unknown field(s) {', '.join(sorted(unknown))}; "
                               f"known: command, {', '.join(PROCESS_TEXTS)}")
        command = fields.pop("command", None) or [a for a in sys.argv if a] or [sys.executable]
        if isinstance(command, str):
            command = [command]
        fields.setdefault("host", socket.gethostname())
        try:
            process = Process(tuple(command), **fields)
        except TypeError as e:
            raise DatamonError(f"process: {e}") from None
    if process is not None:
        problem = rules.process_problem(list(process.command),
                                        *(getattr(process, n) for n in PROCESS_TEXTS))
        if problem:
            raise DatamonError(f"process cannot be recorded: {problem}")
    return process


class NewBundle:
    """A bundle being written; made by `Repo.new_bundle` (see the module). Use it in a
    `with` block, or call `commit()` or `abort()`. Thread-safe."""

    def __init__(self, store: "Store", repo: str, branch: str, message: str,
                 label: str | None, inputs: tuple[Input, ...], process: ProcessLike,
                 empty: bool, allow_empty: bool, progress: Callable[[int], None] | None):
        repository = store.repository
        check_target(repository, repo, branch, label)
        if not isinstance(message, str):
            raise DatamonError("message must be text")
        self.author = store.author  # no author: ConfigError now, before anything is written
        self.provenance = Provenance(inputs, make_process(process))
        self.repo, self.branch, self.message, self.label = repo, branch, message, label
        self.allow_empty = allow_empty
        self.progress = progress
        self._store = store
        self._repository = repository
        head = repository.ref_head(repo, BRANCH, branch)
        self.parent = repository.get_bundle(repo, head.bundle) if head else None
        self._changes = Changes(repository.trees,
                                None if empty or self.parent is None else self.parent.tree)
        self.stats = UploadStats()
        self._uploader = ChunkUploader(repository, self.stats)
        self._lock = threading.RLock()
        self._state = "open"
        self.bundle: Bundle | None = None  # after commit: the new bundle, or the head
        self.created = False  # after commit: whether a bundle was made
        self.forked = False  # the branch had moved since this bundle's parent

    # -- the block -----------------------------------------------------------

    def __enter__(self) -> "NewBundle":
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()

    def _check_open(self) -> None:
        if self._state != "open":
            raise DatamonError(f"this new bundle of {self.repo}:{self.branch} is {self._state}; "
                               "start another with new_bundle()")

    # -- writing -------------------------------------------------------------

    def write_bytes(self, path: str, data: bytes, mode: int = 0o644,
                    mtime_ns: int | None = None) -> None:
        """A file holding `data` at `path` (replacing what is there; directories on the
        way are made). Its time is now (`mtime_ns`: that time), unless the same bytes with
        the same mode are there already: then that file is kept as it is."""
        self.put_stream(path, io.BytesIO(data), mode, mtime_ns)

    def write_text(self, path: str, text: str, encoding: str = "utf-8", **kw) -> None:
        self.write_bytes(path, text.encode(encoding), **kw)

    def put_stream(self, path: str, stream: BinaryIO, mode: int = 0o644,
                   mtime_ns: int | None = None) -> None:
        """A file whose bytes are read from a binary stream until it ends (a socket, a
        member of a tar, a response body), cut and uploaded as they come."""
        names = self._file_names(path)
        with self._lock:
            self._check_open()
            self._check_mode(mode)
            chunks = []
            for data in cut(stream):
                chunks.append(self._uploader.add(data))
                self.stats.bytes += len(data)
                if self.progress:
                    self.progress(len(data))
            entry = file_entry(self._repository.objects, names[-1], mode,
                               time.time_ns() if mtime_ns is None else mtime_ns, chunks)
            if mtime_ns is None:
                entry = self._changes.unchanged(names, entry) or entry
            self._changes.place(names, Keep(entry))
            self.stats.files += 1

    def put_file(self, local_path: str, path: str) -> None:
        """A local file at `path`, with its permission bits and modification time."""
        try:
            with open(local_path, "rb", buffering=0) as f:
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode):
                    raise DatamonError(f"{local_path} is not a regular file")
                self.put_stream(path, f, stat.S_IMODE(st.st_mode), st.st_mtime_ns)
        except OSError as e:
            raise DatamonError(f"cannot read {local_path}: {e.strerror or e}") from None

    def put_dir(self, local_dir: str, prefix: str = "") -> None:
        """Every file, symlink and directory below a local directory, at `prefix`: added,
        or replacing what is at the same paths (like `cp -r DIR/. PREFIX/`). Onto a path
        where nothing is, the directory's tree is built as `bundle upload` builds it, one
        directory in memory at a time; onto an existing directory, each of its entries is
        staged."""
        names = split_path(prefix)
        source = check_folder(local_dir)
        with self._lock:
            self._check_open()
            job = DirectoryUpload(self._repository, source, self.progress)
            top = job.run()
            for name in ("files", "bytes", "chunks", "chunks_uploaded", "bytes_uploaded"):
                setattr(self.stats, name, getattr(self.stats, name) + getattr(job.stats, name))
            self._changes.put_tree(names, top.tree, top.mode, top.mtime)

    def put_tar(self, stream: BinaryIO, prefix: str = "") -> int:
        """The members of a tar stream (read once, in order; any compression tarfile
        knows) at `prefix`: files, directories and symlinks; anything else, and names
        that leave the bundle, are refused. Returns the files and links written."""
        count = 0
        try:
            with tarfile.open(fileobj=stream, mode="r|*") as tar:
                for m in tar:
                    path = "/".join([prefix, m.name]) if prefix else m.name
                    mtime = int(m.mtime * 1_000_000_000)
                    if m.isdir():
                        self.mkdir(path)
                    elif m.isreg():
                        self.put_stream(path, tar.extractfile(m), m.mode & 0o7777, mtime)
                        count += 1
                    elif m.issym():
                        self.symlink(path, m.linkname, mtime)
                        count += 1
                    else:
                        raise DatamonError(f"tar member {m.name[:200]!r} is not a file, "
                                           "directory or symlink; a bundle cannot hold it")
        except tarfile.TarError as e:
            raise DatamonError(f"not a readable tar stream: {e}") from None
        return count

    def symlink(self, path: str, target: str, mtime_ns: int | None = None) -> None:
        """A symlink at `path` to `target`, which must stay inside the bundle (relative,
        its '..' first and no more of them than directories above it)."""
        names = self._file_names(path)
        problem = rules.link_problem(target, len(names) - 1)
        if problem:
            raise InvalidPath(f"symlink {'/'.join(names)} -> {target!r:.200}: {problem}")
        entry = Entry(names[-1], LINK, 0o777, time.time_ns() if mtime_ns is None else mtime_ns,
                      len(target.encode("utf-8")), target=target)
        with self._lock:
            self._check_open()
            self._changes.place(names, Keep(entry))
            self.stats.files += 1

    def mkdir(self, path: str) -> None:
        """A directory (and those on the way), empty unless something is written in it;
        nothing when it exists."""
        names = split_path(path)
        with self._lock:
            self._check_open()
            self._changes.descend(names)

    def remove(self, path: str) -> None:
        """Remove a file, a symlink or a whole directory (PathNotFound when nothing is
        there)."""
        names = split_path(path)
        if not names:
            raise InvalidPath("the root of a bundle cannot be removed; start the new bundle "
                              "with empty=True instead")
        with self._lock:
            self._check_open()
            if self._changes.lookup(names) is None:
                raise PathNotFound(f"nothing at {'/'.join(names)!r} in the new bundle to remove")
            self._changes.remove(names)

    def open(self, path: str, mode: str = "wb") -> "StagedFile":
        """A binary file object to write a file at `path`; what was written is staged
        when it is closed."""
        if mode not in ("wb", "w+b", "xb"):
            raise DatamonError(f"a new bundle's files are opened with mode 'wb', not {mode!r}; "
                               "read the bundle it starts from for the old content")
        names = self._file_names(path)
        self._check_open()
        return StagedFile(self, "/".join(names))

    def copy(self, source: "Bundle", src_path: str, path: str) -> None:
        """A file, symlink or directory of a bundle of this store at `path`, reusing its
        chunks or its tree: nothing is read or uploaded. A directory copied onto a
        directory is merged into it, as put_dir does."""
        if source._store.url != self._store.url:
            raise DatamonError(f"bundle {source.ref} is in store {source._store.url}, not in "
                               f"{self._store.url}; download it and put_dir it instead")
        rel, entry = source._entry(src_path)
        names = split_path(path)
        with self._lock:
            self._check_open()
            tree = source.tree if entry is None else entry.tree if entry.kind == DIR else None
            if tree is None:
                self._changes.place(self._file_names(path), Keep(entry))
                self.stats.files += 1
                return
            if entry is not None and len(names) < len(split_path(rel)):
                self._check_links_at(entry, names)
            mode, mtime = (0o755, time.time_ns()) if entry is None else (entry.mode, entry.mtime)
            self._changes.put_tree(names, tree, mode, mtime)

    def _check_links_at(self, entry: Entry, names: tuple[str, ...]) -> None:
        """A directory placed closer to the root keeps its links only if they still stay
        inside the bundle there (core.rules, as for a rename in a writable mount)."""
        prefix = "/".join(names)
        try:
            for _ in self._repository.trees.walk(entry.tree, (entry.files, entry.size),
                                                 prefix + "/" if prefix else ""):
                pass
        except IntegrityError as e:
            raise InvalidPath(f"cannot copy a directory to {prefix or '/'}: {e}") from None

    def is_dir(self, path: str) -> bool:
        """Whether the new bundle, as staged so far, has a directory at `path`."""
        with self._lock:
            found = self._changes.lookup(split_path(path))
            return found is not None and is_dir(found)

    def exists(self, path: str) -> bool:
        """Whether the new bundle, as staged so far, has something at `path`."""
        with self._lock:
            return self._changes.lookup(split_path(path)) is not None

    # -- the end -------------------------------------------------------------

    def commit(self) -> "Bundle":
        """Record the new bundle on the branch (and the label); returns it. When its tree
        equals the parent's no bundle is made unless `allow_empty`: the head is returned
        (`created` False) and the label set to it."""
        from .bundle import Bundle

        with self._lock:
            self._check_open()
            self._state = "being committed"
            try:
                self._uploader.finish()
                result = commit(self._repository, self.repo, self.branch, self.parent,
                                self._changes.describe(), self.message, self.author, self.label,
                                provenance=self.provenance,
                                allow_empty=self.allow_empty or self.parent is None)
                self.created, self.forked = result.bundle is not None, result.forked
                record = result.bundle or self.parent
            except BaseException:
                self._state = "aborted"
                self._uploader.abort()
                raise
            self._state = "committed"
            self.bundle = Bundle(self._store, record)
            return self.bundle

    def abort(self) -> None:
        """Drop what was staged: nothing is recorded."""
        with self._lock:
            if self._state in ("committed", "aborted"):
                return
            self._state = "aborted"
            self._uploader.abort()

    # -- the tree of changes -------------------------------------------------

    def _file_names(self, path: str) -> tuple[str, ...]:
        names = split_path(path)
        if not names:
            raise IsADirectory("the root of a bundle is a directory; give a file's path")
        return names

    @staticmethod
    def _check_mode(mode: int) -> None:
        problem = rules.mode_problem(mode)
        if problem:
            raise DatamonError(f"mode {mode!r}: {problem}")

class StagedFile(io.RawIOBase):
    """A file being written into a NewBundle (`NewBundle.open`): spooled in memory up to
    SPOOL_MEMORY bytes, then in a temp file; staged (cut and uploaded) when closed."""

    def __init__(self, new_bundle: NewBundle, path: str, mode: int = 0o644):
        super().__init__()
        self._nb, self.path, self._mode = new_bundle, path, mode
        self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
        self._discarded = False

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._checkClosed()
        return self._spool.write(data)

    def tell(self) -> int:
        return self._spool.tell()

    def discard(self) -> None:
        """Close without staging anything."""
        self._discarded = True
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        try:
            if not self._discarded:
                self._spool.seek(0)
                self._nb.put_stream(self.path, self._spool, self._mode)
        finally:
            self._spool.close()
            super().close()

