"""`datamonfs serve` as a subprocess on a free loopback port, ended by pid, and tokens."""

from __future__ import annotations

import os
import select
import subprocess
import time

from .cli import CLI, DATAMONFS
from .processes import stop_process

SECRET = b"s" * 16 + os.urandom(16).hex().encode()  # 48 bytes, fresh per test run


class Server:
    """One `datamonfs serve --bind 127.0.0.1:0 ARGS...` for a CLI's user; `url` once it
    listens. `log()` is what it wrote on stderr."""

    def __init__(self, cli: CLI, *args: str, timeout: float = 30):
        self._log: str | None = None
        self.proc = subprocess.Popen([DATAMONFS, "serve", "--bind", "127.0.0.1:0", *args],
                                     env=cli.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(left, 0))
            if not ready:
                self.stop()
                raise AssertionError(f"serve did not start within {timeout} s: {self.log()}")
            piece = os.read(self.proc.stdout.fileno(), 1)
            if not piece:
                self.stop()
                raise AssertionError(f"serve exited: {self.log()}")
            line += piece
        self.url = line.decode().strip()

    def stop(self) -> None:
        stop_process(self.proc)

    def log(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        if self._log is None:
            self._log = self.proc.stderr.read().decode(errors="replace")
            self.proc.stdout.close()
            self.proc.stderr.close()
        return self._log


def secret_file(tmp_path) -> str:
    path = os.path.join(str(tmp_path), "secret")
    with open(path, "wb") as f:
        f.write(SECRET + b"\n")
    return path
