"""What an upload holds, as members a new bundle takes one at a time.

A tar stream is read as it arrives (tarfile's streaming mode over the request body:
never whole in memory, never on disk); a multipart form is parsed by Starlette, which
spools files over 1 MiB to temporary files. Either way each member's path is checked
with the rules of bundle paths (paths.bundle_path) before anything is written, and
members a bundle cannot hold (hard links, devices, FIFOs) are refused naming them.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from typing import IO, AsyncIterator, Iterator

import anyio

from .errors import BadRequest
from .paths import BadPath, bundle_path

MAX_FILES = 100_000  # files in one multipart form


@dataclass
class Member:
    path: str
    kind: str  # "file", "dir" or "link"
    mode: int
    mtime_ns: int | None
    data: IO[bytes] | None = None  # files
    target: str | None = None  # links


class BlockingBody(io.RawIOBase):
    """The request body as a blocking file, for a worker thread: each read waits on the
    event loop for the next piece (anyio.from_thread), so at most one piece is held."""

    def __init__(self, stream: AsyncIterator[bytes]):
        self._stream = stream
        self._piece = b""
        self._done = False

    def readable(self) -> bool:
        return True

    async def _next(self) -> bytes:
        try:
            return await self._stream.__anext__()
        except StopAsyncIteration:
            return b""

    def readinto(self, buffer) -> int:
        while not self._piece and not self._done:
            self._piece = anyio.from_thread.run(self._next)
            self._done = not self._piece
        n = min(len(buffer), len(self._piece))
        buffer[:n] = self._piece[:n]
        self._piece = self._piece[n:]
        return n


def _path(name: str) -> str:
    try:
        path = bundle_path(name.removeprefix("./"))
    except BadPath as e:
        raise BadRequest(f"refusing {name!r:.200}: {e}") from None
    if not path:
        raise BadRequest(f"refusing {name!r:.200}: it names the root")
    return path


def tar_members(body: IO[bytes]) -> Iterator[Member]:
    try:
        with tarfile.open(fileobj=body, mode="r|*") as tar:
            for info in tar:
                if info.name.rstrip("/") in (".", ""):
                    continue
                path = _path(info.name)
                mtime = int(info.mtime * 1e9) if info.mtime else None
                if info.isreg():
                    yield Member(path, "file", info.mode & 0o7777, mtime, tar.extractfile(info))
                elif info.isdir():
                    yield Member(path, "dir", info.mode & 0o7777, mtime)
                elif info.issym():
                    yield Member(path, "link", 0o777, mtime, target=info.linkname)
                else:
                    raise BadRequest(f"refusing {path!r}: a bundle holds files, directories "
                                     "and symlinks only (no hard links or special files)")
    except tarfile.TarError as e:
        raise BadRequest(f"the body is not a readable tar stream: {e}") from None


def form_members(form) -> Iterator[Member]:
    """Every file part of the form (any field name); its filename is its path in the
    bundle (a browser sends a folder's files with their relative paths)."""
    for _, value in form.multi_items():
        if isinstance(value, str):
            continue
        if not value.filename:
            raise BadRequest("a file part has no filename")
        yield Member(_path(value.filename), "file", 0o644, None, value.file)
