"""One daemon per socket: an fcntl lock on SOCKET.lock, held for the daemon's life.

The kernel drops the lock when the holder dies, however it dies, so a stale
lock file never blocks a new daemon. The file holds the holder's pid.
"""

from __future__ import annotations

import fcntl
import os


class DaemonLock:
    def __init__(self, path: str):
        self.path = path
        self._fd: int | None = None

    def try_acquire(self, write_pid: bool = True) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        if write_pid:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return True

    def holder_pid(self) -> int | None:
        try:
            with open(self.path) as f:
                return int(f.read().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
