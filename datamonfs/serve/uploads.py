"""Request bodies for a worker thread: a tar stream read as it arrives, a form's files.

A tar body is handed to NewBundle.put_tar as a blocking file over the request stream
(never whole in memory, never on disk); a multipart form is parsed by Starlette, which
spools files over 1 MiB to temporary files. Member paths are checked by the Python
API's one path check (datamonfs/sdk/paths.py), members a bundle cannot hold refused.
"""

from __future__ import annotations

import io
from typing import AsyncIterator

import anyio

from ..sdk import NewBundle
from .errors import BadRequest

MAX_FILES = 100_000  # files in one multipart form


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


def put_tar(nb: NewBundle, body: BlockingBody) -> None:
    nb.put_tar(io.BufferedReader(body, 1 << 20))


def put_form(nb: NewBundle, form) -> None:
    """Every file part of the form (any field name); its filename is its path in the
    bundle (a browser sends a folder's files with their relative paths)."""
    for _, value in form.multi_items():
        if isinstance(value, str):
            continue
        if not value.filename:
            raise BadRequest("a file part has no filename")
        nb.put_stream(value.filename, value.file)
