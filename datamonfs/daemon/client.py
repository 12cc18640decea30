"""A blocking client of the control socket, for the CLI and other tools."""

from __future__ import annotations

import itertools
import json
import socket
import time

from ..errors import (AlreadyExists, AmbiguousRef, ConfigError, DatamonError, IntegrityError,
                      InvalidName, NotFound, StoreUnavailable)
from . import protocol
from .paths import connect, paths_for
from .service import AlreadyRunning, start_background


class DaemonUnavailable(StoreUnavailable):
    code = "daemon_unavailable"


_ERRORS = {c.code: c for c in (InvalidName, NotFound, AlreadyExists, AmbiguousRef, ConfigError,
                               StoreUnavailable, IntegrityError, DaemonUnavailable)}


def error_for(err: dict) -> DatamonError:
    """The exception a reply's error stands for: the CLI's exit status follows its code."""
    code = str(err.get("code", "error"))
    e = _ERRORS.get(code, DatamonError)(str(err.get("message", "the daemon refused")))
    e.code = code
    return e


class Client:
    def __init__(self, socket_path: str | None = None, timeout: float = 30.0):
        self.paths = paths_for(socket_path)
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._sock: socket.socket | None = None
        self._file = None

    def connect(self) -> "Client":
        try:
            self._sock = connect(self.paths.socket, self.timeout)
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise DaemonUnavailable(
                f"no datamonfs daemon is running on {self.paths.socket} ({e.strerror}); "
                "start one with 'datamonfs daemon start'") from None
        except OSError as e:
            raise DaemonUnavailable(f"cannot reach the datamonfs daemon on {self.paths.socket}: "
                                    f"{e.strerror or e}") from None
        self._file = self._sock.makefile("rb")
        return self

    def close(self) -> None:
        if self._file:
            self._file.close()
        if self._sock:
            self._sock.close()
        self._sock = self._file = None

    def __enter__(self) -> "Client":
        return self if self._sock else self.connect()

    def __exit__(self, *exc) -> None:
        self.close()

    def call(self, op: str, timeout: float | None = None, on_progress=None, **fields) -> dict:
        """Send one request; the reply's fields, or the error it carries raised. With
        `on_progress` the daemon is asked to stream progress lines before the reply
        (docs/PROTOCOL.md), each passed to it as a dict."""
        if self._sock is None:
            self.connect()
        rid = next(self._ids)
        self._sock.settimeout(timeout or self.timeout)
        if on_progress is not None:
            fields["progress"] = True
        try:
            self._sock.sendall(protocol.encode({"id": rid, "op": op, **fields}))
            while True:
                line = self._file.readline(protocol.MAX_LINE * 16)
                reply = _parse(line)
                if not (isinstance(reply, dict) and "progress" in reply and "ok" not in reply):
                    break
                if on_progress is not None and isinstance(reply["progress"], dict):
                    on_progress(reply["progress"])
        except socket.timeout:
            raise DaemonUnavailable(f"the datamonfs daemon on {self.paths.socket} did not answer "
                                    f"{op!r} in time") from None
        except OSError as e:
            raise DaemonUnavailable(f"lost the datamonfs daemon on {self.paths.socket}: "
                                    f"{e.strerror or e}") from None
        if not line:
            raise DaemonUnavailable(f"the datamonfs daemon on {self.paths.socket} closed the "
                                    "connection")
        if not isinstance(reply, dict):
            raise DaemonUnavailable(f"the datamonfs daemon on {self.paths.socket} answered "
                                    "something that is not a reply")
        if not reply.get("ok"):
            raise error_for(reply.get("error") or {})
        return reply


def _parse(line: bytes):
    try:
        return json.loads(line) if line else None
    except ValueError:
        return None


def ensure_daemon(socket_path: str | None = None) -> tuple[Client, int | None]:
    """A connected client, starting the daemon when none runs; (client, pid if started)."""
    client = Client(socket_path)
    try:
        return client.connect(), None
    except DaemonUnavailable:
        pass
    pid = None
    try:
        pid = start_background(socket_path)
    except AlreadyRunning:
        pass  # another start won the race: use that daemon
    deadline = time.monotonic() + 10
    while True:
        try:
            return client.connect(), pid
        except DaemonUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def pid_alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
