"""What the Python API says about one path of a bundle, and how it reads a file's bytes.

`FileInfo` is a path's entry with its content address (an ETag for servers). A file is
read through `cache.FileReader`, the reader the mounts use: its chunks come through the
block cache, each verified, and sequential reads fetch the next chunks ahead.
"""

from __future__ import annotations

import datetime
import io
from dataclasses import dataclass

from ..cache import FileReader
from ..core.encoding import VERSION, address, encode
from ..core.model import DIR, FILE, LINK, Entry

KINDS = (FILE, DIR, LINK)


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def _when(ns: int) -> datetime.datetime:
    """A record's time (ns) as a UTC datetime, truncated to the microsecond (never later
    than the record, so `since=bundle.time` includes the bundle)."""
    return _EPOCH + datetime.timedelta(microseconds=ns // 1000)


@dataclass(frozen=True)
class FileInfo:
    """One path of a bundle: a file, a directory or a symlink.

    `size` is a file's length, a directory's bytes below it (at any depth), a link's
    target length. `files` counts the files below a directory (1 for a file or link).
    `address` names the content and changes exactly when it does, so it serves as an
    ETag: for a file the BLAKE3 address of its chunk list in the canonical form of a
    chunks object (docs/FORMAT.md §5.4; equal bytes give equal chunks, hence an equal
    address), for a directory its tree address, for a link the BLAKE3 of its target.
    """

    path: str  # from the bundle's root, no leading '/'; "" for the root
    kind: str  # "file", "dir" or "link"
    size: int
    mode: int  # permission bits, e.g. 0o644
    mtime_ns: int
    address: str
    files: int = 1
    target: str | None = None  # a link's target

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def mtime(self) -> datetime.datetime:
        return _when(self.mtime_ns)

    @property
    def is_file(self) -> bool:
        return self.kind == FILE

    @property
    def is_dir(self) -> bool:
        return self.kind == DIR

    def to_json(self) -> dict:
        """As the CLI's --json and a server would give it (mode as an octal string)."""
        obj = {"path": self.path, "kind": self.kind, "size": self.size,
               "mode": format(self.mode, "o").rjust(3, "0"),
               "mtime": self.mtime.isoformat(timespec="seconds"), "address": self.address}
        if self.kind == DIR:
            obj["files"] = self.files
        if self.target is not None:
            obj["target"] = self.target
        return obj

    @classmethod
    def of(cls, path: str, entry: Entry) -> "FileInfo":
        return cls(path, entry.kind, entry.size, entry.mode, entry.mtime, content_address(entry),
                   entry.file_count, entry.target)


def content_address(entry: Entry) -> str:
    """See FileInfo.address. Reads nothing: a file's chunk list is inline or named."""
    if entry.kind == DIR:
        return entry.tree
    if entry.kind == LINK:
        return address(entry.target.encode("utf-8"))
    if entry.chunklist:
        return entry.chunklist
    return address(encode({"v": VERSION, "type": "chunks",
                           "chunks": [list(c) for c in entry.chunks or ()]}))


def root_info(tree: str, files: int, size: int) -> FileInfo:
    return FileInfo("", DIR, size, 0o755, 0, tree, files)


class RawBundleFile(io.RawIOBase):
    """The bytes of one file of a bundle, read lazily; see `BundleFile`."""

    def __init__(self, reader: FileReader, info: FileInfo):
        super().__init__()
        self._reader = reader
        self._pos = 0
        self.info = info

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        return n

    def read(self, size: int = -1) -> bytes:
        self._checkClosed()
        if size is None or size < 0:
            size = max(self._reader.size - self._pos, 0)
        data = self._reader.read(self._pos, size)
        self._pos += len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._reader.size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        if not self.closed:
            self._reader.close()
        super().close()


class BundleFile(io.BufferedReader):
    """A seekable binary file object over one file of a bundle (`Bundle.open`).

    Nothing is read before it is asked for: each read fetches the chunks holding the
    range wanted through the block cache (verified against their addresses); reading
    on from where the last read ended doubles a read-ahead window, up to about 20 MiB.
    `info` is the file's FileInfo. Close it (or use `with`) to let go of the chunks it
    keeps in memory."""

    def __init__(self, raw: RawBundleFile, buffer_size: int = 256 << 10):
        super().__init__(raw, buffer_size)
        self.info = raw.info

    @property
    def size(self) -> int:
        return self.info.size
