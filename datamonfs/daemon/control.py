"""The control socket's server: who may talk, the framing, and dispatch to the ops.

A connection carries any number of requests, answered one by one in order
(docs/PROTOCOL.md). Each op is a handler in the table the supervisor builds; what
a handler raises as a DatamonError is the reply's error (its code, for programs),
anything else is an `internal` error, logged with its traceback.
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

import trio

from ..errors import DatamonError
from . import auth, protocol

log = logging.getLogger(__name__)

Handler = Callable[[dict, auth.Peer], Awaitable[dict]]


class ControlServer:
    def __init__(self, ops: dict[str, Handler], group: int | None, everyone: bool = False,
                 closing: Callable[[], bool] = lambda: False):
        self.ops = ops
        self.group = group  # whose members may connect besides root and the daemon's user
        self.everyone = everyone  # node mode: any uid connects; pods.py checks each request
        self.closing = closing  # once true (the daemon stops), every request is refused

    async def connection(self, stream: trio.SocketStream) -> None:
        chan = protocol.LineStream(stream)
        try:
            peer = auth.peer_of(stream.socket)
            if not self.everyone and not auth.allowed(peer, self.group):
                log.warning("refused a connection from uid %d (pid %d)", peer.uid, peer.pid)
                await chan.send(protocol.error(None, "forbidden",
                                               f"uid {peer.uid} may not use this daemon"))
                return
            while True:
                try:
                    line = await chan.receive_line()
                except protocol.LineTooLong:
                    await chan.send(protocol.error(None, "too_large",
                                                   f"request longer than {protocol.MAX_LINE} bytes"))
                    continue
                if line is None:
                    return
                await chan.send(await self.dispatch(line, peer, chan))
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
            pass  # the client went away; nothing to answer
        finally:
            await stream.aclose()

    async def dispatch(self, line: bytes, peer: auth.Peer,
                       chan: protocol.LineStream | None = None) -> dict:
        rid = None
        try:
            req = protocol.decode(line)
            rid = protocol.request_id(req)
            if chan is not None and req.get("progress") is True:
                async def progress(p: dict, rid=rid) -> None:
                    await chan.send({"id": rid, "progress": p})

                protocol.set_progress_sink(progress)
            else:
                protocol.set_progress_sink(None)
            op = req.get("op")
            handler = self.ops.get(op) if isinstance(op, str) else None
            if handler is None:
                raise protocol.ProtocolError(f"unknown op {op!r:.40}; known ops: "
                                             f"{', '.join(sorted(self.ops))}", "unknown_op")
            if self.closing():
                raise protocol.Refused("the daemon is shutting down", "shutting_down")
            return protocol.ok(rid, **await handler(req, peer))
        except DatamonError as e:
            return protocol.error_from(rid, e)
        except Exception as e:
            log.exception("request failed")
            return protocol.error(rid, "internal", f"internal error: {type(e).__name__}: {e}")
