"""The control protocol: one JSON object per line, both ways (see docs/PROTOCOL.md).

Request  {"id": ID, "op": NAME, ...}
Reply    {"id": ID, "ok": true, ...}  or  {"id": ID, "ok": false, "error": {"code", "message"}}

The same framing carries the supervisor's private channel to each mount worker.
"""

from __future__ import annotations

import contextvars
import json
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from ..errors import DatamonError

if TYPE_CHECKING:  # only for annotations: the CLI imports this module without trio
    import trio

MAX_LINE = 64 * 1024  # a request longer than this is refused, and the connection carries on


class Refused(DatamonError):
    """An error reply: its message, and its code from docs/PROTOCOL.md's table."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


class ProtocolError(Refused):
    """A request the daemon cannot parse or does not know."""

    def __init__(self, message: str, code: str = "bad_request"):
        super().__init__(message, code)


class LineTooLong(Exception):
    pass


def encode(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def decode(line: bytes) -> dict:
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise ProtocolError(f"request is not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise ProtocolError("request must be a JSON object")
    return obj


def request_id(obj: dict) -> Any:
    rid = obj.get("id")
    return rid if isinstance(rid, (str, int, float)) and not isinstance(rid, bool) else None


def field(obj: dict, name: str, types=str, required: bool = True):
    value = obj.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, types) or isinstance(value, bool) and types is not bool:
        raise ProtocolError(f"field {name!r} is missing or of the wrong type")
    return value


# Where a long op's progress goes: set per request by the control server, so a handler
# (and the worker reply it waits for) can stream {"id", "progress": {...}} lines before
# its reply without every handler taking the connection as an argument.
ProgressSink = Callable[[dict], Awaitable[None]]
_progress_sink: contextvars.ContextVar[ProgressSink | None] = contextvars.ContextVar(
    "progress_sink", default=None)


def progress_sink() -> ProgressSink | None:
    return _progress_sink.get()


def set_progress_sink(sink: ProgressSink | None) -> None:
    _progress_sink.set(sink)


def ok(rid: Any, **fields) -> dict:
    return {"id": rid, "ok": True, **fields}


def error(rid: Any, code: str, message: str) -> dict:
    return {"id": rid, "ok": False, "error": {"code": code, "message": message}}


def error_from(rid: Any, e: DatamonError) -> dict:
    return error(rid, e.code, " ".join(str(e).split()))


class LineStream:
    """JSON lines over a trio stream, with a cap on the length of a line."""

    def __init__(self, stream: trio.abc.Stream, limit: int = MAX_LINE):
        import trio

        self.stream = stream
        self._sending = trio.Lock()  # progress lines and replies from several tasks
        self.limit = limit
        self._buf = bytearray()
        self._eof = False

    async def receive_line(self) -> bytes | None:
        """The next line without its newline; None at end of stream.

        A line over the limit is skipped up to its newline and LineTooLong is
        raised, so the caller can answer it and go on with the next line.
        """
        skipping = False
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[:nl + 1]
                if skipping or len(line) > self.limit:
                    raise LineTooLong()
                return line
            if len(self._buf) > self.limit:
                skipping = True
                self._buf.clear()
            if self._eof:
                if self._buf and not skipping:
                    line = bytes(self._buf)  # a last line without its newline
                    self._buf.clear()
                    return line
                if skipping:
                    raise LineTooLong()
                return None
            data = await self.stream.receive_some(65536)
            if not data:
                self._eof = True
            self._buf += data

    async def receive(self) -> dict | None:
        line = await self.receive_line()
        return None if line is None else decode(line)

    async def send(self, obj: dict) -> None:
        async with self._sending:
            await self.stream.send_all(encode(obj))
