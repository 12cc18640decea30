"""The supervisor's handle on a mount worker process (mount_worker.py): spawn, mount,
ask, stop."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import socket
import subprocess
import sys

import trio

from . import protocol
from .limits import MOUNT_TIMEOUT
from .protocol import Refused

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0
WORKER_LINE = 16 << 20


class WorkerProcess:
    def __init__(self, proc: trio.Process, chan: protocol.LineStream):
        self.proc = proc
        self.chan = chan
        self.pid = proc.pid
        self._lock = trio.Lock()
        self._ids = itertools.count(1)
        self.exited = trio.Event()
        self.returncode: int | None = None

    @classmethod
    async def spawn(cls, log_fd: int | None) -> "WorkerProcess":
        """Start a worker and wait until it is idle (imports done)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            proc = await trio.lowlevel.open_process(
                [sys.executable, "-m", "datamonfs.daemon.mount_worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                stdout=log_fd, stderr=log_fd, start_new_session=True)
        finally:
            theirs.close()
        # Replies of a writable mount's status list up to thousands of paths.
        chan = protocol.LineStream(trio.SocketStream(trio.socket.from_stdlib_socket(ours)),
                                   limit=WORKER_LINE)
        worker = cls(proc, chan)
        ok = False
        try:
            with trio.move_on_after(START_TIMEOUT):
                msg = await chan.receive()
                ok = bool(msg) and msg.get("event") == "idle"
        finally:
            if not ok:  # also when cancelled: never leave a worker behind
                with trio.CancelScope(shield=True):
                    await worker.kill()
        if ok:
            return worker
        raise Refused("a mount worker failed to start; see the daemon log", "internal")

    async def mount(self, request: dict) -> dict:
        """Ask the idle worker to mount; its 'ready' message, or the error it reports."""
        async with self._lock:
            await self.chan.send({"op": "mount", **request})
            with trio.move_on_after(MOUNT_TIMEOUT):
                msg = await self.chan.receive()
                if msg is None:
                    raise Refused("the mount worker exited while mounting; see the daemon log",
                                  "mount_failed")
                if msg.get("event") == "ready":
                    return msg
                err = msg.get("error") or {}
                raise Refused(err.get("message", "mount failed"), err.get("code", "mount_failed"))
        raise Refused(f"mounting took longer than {MOUNT_TIMEOUT:.0f}s", "unavailable")

    async def ask(self, op: str, timeout: float = 5.0, on_progress=None, **fields) -> dict | None:
        """One request on the private channel; None when the worker does not answer.
        Progress lines the worker sends before its reply go to `on_progress`."""
        async with self._lock:
            rid = next(self._ids)
            try:
                with trio.move_on_after(timeout):
                    await self.chan.send({"id": rid, "op": op, **fields})
                    while True:
                        msg = await self.chan.receive()
                        if msg is None:
                            return None
                        if msg.get("id") == rid and "progress" in msg and "ok" not in msg:
                            if on_progress is not None and isinstance(msg["progress"], dict):
                                await _forward(on_progress, msg["progress"])
                        elif msg.get("id") == rid:
                            return msg
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                return None
        return None

    async def wait(self) -> int:
        code = await self.proc.wait()
        self.returncode = code
        self.exited.set()
        await self.chan.stream.aclose()
        return code

    def alive(self) -> bool:
        return self.proc.returncode is None

    def signal(self, sig: int) -> None:
        if self.proc.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    async def stop(self, grace: float = 10.0) -> None:
        """SIGTERM (the worker unmounts and exits), then SIGKILL after `grace` seconds."""
        self.signal(signal.SIGTERM)
        with trio.move_on_after(grace):
            await self.proc.wait()
            return
        await self.kill()

    async def kill(self) -> None:
        self.signal(signal.SIGKILL)
        await self.proc.wait()
        await self.chan.stream.aclose()


async def _forward(on_progress, progress: dict) -> None:
    """Pass a progress line on; a client that went away must not fail the commit."""
    try:
        await on_progress(progress)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"worker killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"worker killed by signal {-code}"
    return f"worker exited with status {code}"
