"""Where a daemon lives: its socket, its lock, its log and its mount registry.

One daemon per socket. The socket is $DATAMONFS_SOCKET (or --socket), else
$XDG_RUNTIME_DIR/datamonfs/daemon.sock for a user, else /run/datamonfs/daemon.sock
for root. Its log and registry live under the XDG state directory, in a folder
named after the socket, so several daemons never share them.
"""

from __future__ import annotations

import hashlib
import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from ..core.config import state_dir
from ..errors import ConfigError

SOCKET_NAME = "daemon.sock"
_SUN_PATH_MAX = 107


def default_socket() -> str:
    explicit = os.environ.get("DATAMONFS_SOCKET")
    if explicit:
        return os.path.abspath(explicit)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "datamonfs", SOCKET_NAME)
    if os.geteuid() == 0:
        return os.path.join("/run/datamonfs", SOCKET_NAME)
    return os.path.join(f"/tmp/datamonfs-{os.geteuid()}", SOCKET_NAME)


@dataclass(frozen=True)
class DaemonPaths:
    socket: str
    lock: str
    state: str
    log: str
    registry: str


def paths_for(socket_path: str | None = None) -> DaemonPaths:
    sock = os.path.abspath(socket_path) if socket_path else default_socket()
    key = hashlib.sha256(sock.encode()).hexdigest()[:16]
    state = os.path.join(state_dir(), "daemon", key)
    return DaemonPaths(socket=sock, lock=sock + ".lock", state=state,
                       log=os.path.join(state, "daemon.log"),
                       registry=os.path.join(state, "mounts.json"))


def make_private_dir(path: str) -> None:
    """Create the socket's directory readable by its owner only."""
    if not os.path.isdir(path):
        os.makedirs(path, mode=0o700, exist_ok=True)


@contextmanager
def short_address(path: str) -> Iterator[str]:
    """An AF_UNIX address for `path`, also when it is longer than sun_path allows.

    A long path is reached through /proc/self/fd/N/NAME, N being the directory
    opened O_PATH for the duration of the bind or connect.
    """
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        yield path
        return
    fd = os.open(os.path.dirname(path) or ".", os.O_PATH | os.O_DIRECTORY)
    try:
        short = f"/proc/self/fd/{fd}/{os.path.basename(path)}"
        if len(short) > _SUN_PATH_MAX:
            raise ConfigError(f"socket name {os.path.basename(path)!r} is too long")
        yield short
    finally:
        os.close(fd)


def connect(path: str, timeout: float | None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        with short_address(path) as addr:
            sock.connect(addr)
    except BaseException:
        sock.close()
        raise
    return sock
