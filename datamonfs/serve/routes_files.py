"""File bytes: GET and HEAD of /api/v1/repos/{repo}/refs/{ref}/files/{path}.

Streamed in PIECE-sized reads through the block cache (each read a worker thread from
the bounded pool, blocking.py), so a response holds one piece in memory whatever the
file's size. Conditional and range requests: ranges.py.
"""

from __future__ import annotations

import mimetypes
import os
from typing import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..cache import FileReader
from . import params, ranges
from .access import require
from .auth import READ
from .blocking import run
from .engine import Engine

PIECE = 1 << 20  # bytes read and sent at a time (256 KiB pieces were 30% slower)
# Bundles are immutable, but a ref (a label, a branch) may move: a client may keep what it
# fetched and revalidate it (If-None-Match), which costs a lookup and no bytes.
CACHE_CONTROL = "private, no-cache"


def content_type(path: str) -> str:
    guessed, encoding = mimetypes.guess_type(path, strict=False)
    if guessed is None or encoding is not None:
        return "application/octet-stream"  # a .csv.gz is gzip bytes, not text
    if guessed.startswith("text/") or guessed in ("application/json", "application/xml"):
        return f"{guessed}; charset=utf-8"
    return guessed


async def file_bytes(request: Request) -> Response:
    repo = params.repo(request)
    require(request, READ, repo)
    ref, path = params.ref(request), params.path(request)
    e: Engine = request.app.state.engine
    info, reader = await run(_open, e, repo, ref, path)
    etag = ranges.etag_of(info.address)
    size = info.size
    filename = os.path.basename(path)
    headers = {"ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": CACHE_CONTROL,
               "Content-Type": content_type(path),
               # Served bytes never run as this site: an HTML or SVG file opened directly
               # is sandboxed (a unique origin, no scripts), so it cannot read the token.
               "Content-Security-Policy": "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"}
    if request.query_params.get("download") == "1":
        headers["Content-Disposition"] = _attachment(filename)
    plan = ranges.plan(request.headers, size, etag)
    head = request.method == "HEAD"
    if plan.status == 304:
        reader.close()
        return Response(status_code=304, headers={k: headers[k] for k in
                                                  ("ETag", "Cache-Control")})
    if plan.status == 416:
        reader.close()
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}",
                                                  "ETag": etag})
    if plan.status == 200:
        return await _answer(reader, (0, size), 200, {**headers, "Content-Length": str(size)},
                             head)
    if len(plan.ranges) == 1:
        start, end = plan.ranges[0]
        headers["Content-Range"] = ranges.content_range(start, end, size)
        headers["Content-Length"] = str(end - start)
        return await _answer(reader, (start, end), 206, headers, head)
    return _multipart(reader, plan.ranges, size, headers, head)


def _open(e: Engine, repo: str, ref: str, path: str):
    return e.open_file(e.bundle(repo, ref), path)


def _attachment(filename: str) -> str:
    from urllib.parse import quote

    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


async def _answer(reader: FileReader, span: tuple[int, int], status: int, headers: dict,
                  head: bool) -> Response:
    """One span: at most a PIECE is read at once and sent as a plain answer (a streamed
    one costs a task per response, a third of the time of a 4 KiB range); more streams."""
    start, end = span
    if head or end - start > PIECE:
        return _stream(reader, [span], status, headers, head)
    try:
        data = await run(reader.read, start, end - start)
    finally:
        reader.close()
    return Response(data, status, headers=headers)


def _stream(reader: FileReader, spans: list[tuple[int, int]], status: int, headers: dict,
            head: bool, parts: list[bytes] | None = None) -> Response:
    if head:
        reader.close()
        return Response(status_code=status, headers=headers)
    return StreamingResponse(_pieces(reader, spans, parts), status_code=status, headers=headers)


async def _pieces(reader: FileReader, spans: list[tuple[int, int]],
                  parts: list[bytes] | None) -> AsyncIterator[bytes]:
    """The bytes of each span, PIECE at a time; with `parts`, each span is preceded by
    its multipart header, and parts[-1] (the closing boundary) ends the body."""
    try:
        for i, (start, end) in enumerate(spans):
            if parts is not None:
                yield parts[i]
            offset = start
            while offset < end:
                data = await run(reader.read, offset, min(PIECE, end - offset))
                if not data:  # the entry said more than the chunks hold: checked below
                    raise RuntimeError("file shorter than its entry")
                offset += len(data)
                yield data
        if parts is not None:
            yield parts[-1]
    finally:
        reader.close()


def _multipart(reader: FileReader, spans: tuple[tuple[int, int], ...], size: int,
               headers: dict, head: bool) -> Response:
    """multipart/byteranges (RFC 9110 §14.6), its length known before the first byte."""
    boundary = os.urandom(12).hex()
    kind = headers["Content-Type"]
    parts = [(f"--{boundary}\r\nContent-Type: {kind}\r\nContent-Range: "
              f"{ranges.content_range(s, e, size)}\r\n\r\n").encode() for s, e in spans]
    parts = [parts[0]] + [b"\r\n" + p for p in parts[1:]] + [f"\r\n--{boundary}--\r\n".encode()]
    length = sum(len(p) for p in parts) + sum(e - s for s, e in spans)
    headers = {**headers, "Content-Type": f"multipart/byteranges; boundary={boundary}",
               "Content-Length": str(length)}
    return _stream(reader, list(spans), 206, headers, head, parts)


ROUTES = [Route("/api/v1/repos/{repo}/refs/{ref}/files/{path:path}", file_bytes,
                methods=["GET", "HEAD"])]
