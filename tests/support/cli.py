"""The installed `datamonfs` command, run as a subprocess in an isolated environment."""

from __future__ import annotations

import copy
import os
import pty
import subprocess
import sys
from dataclasses import dataclass

VENV_BIN = os.path.dirname(sys.executable)
DATAMONFS = os.path.join(VENV_BIN, "datamonfs")


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def last_line(self) -> str:
        return self.out.strip().splitlines()[-1]


class CLI:
    """Runs the installed `datamonfs` command in an isolated environment."""

    def __init__(self, home, store_url: str):
        self.home = home
        self.env = dict(os.environ)
        for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"),
                         ("XDG_CACHE_HOME", "cache"), ("XDG_STATE_HOME", "state"),
                         ("XDG_RUNTIME_DIR", "run")):
            path = os.path.join(home, sub)
            os.makedirs(path, mode=0o700, exist_ok=True)
            self.env[var] = path
        self.env.pop("DATAMONFS_CONFIG", None)
        self.env["DATAMONFS_STORE"] = store_url
        self.env["DATAMONFS_STORE_TIMEOUT"] = "10"
        self.store_url = store_url

    def __call__(self, *args: str, expect: int | None = 0, timeout: float = 120, **kw) -> Result:
        proc = subprocess.run([DATAMONFS, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, **kw)
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        if expect is not None:
            assert proc.returncode == expect, (
                f"datamonfs {' '.join(args)} exited {proc.returncode}, expected {expect}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return result


def with_env(cli: CLI, **env) -> CLI:
    """The same CLI (home, config, socket) with other environment variables (None: unset)."""
    other = copy.copy(cli)
    other.env = {**cli.env, **env}
    for key, value in env.items():
        if value is None:
            other.env.pop(key)
    return other


def one_line_error(r: Result, *words: str) -> None:
    """`r` failed with one line on stderr, holding each of `words`."""
    assert r.err.count("\n") == 1 and r.err.startswith("datamonfs: error: "), r.err
    for w in words:
        assert w in r.err, r.err


def on_terminal(args: list[str], env: dict, timeout: float = 120) -> tuple[int, bytes]:
    """Run a command with stderr on a pseudo-terminal: (exit status, what it showed there)."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(args, env=env, stderr=slave, stdout=subprocess.PIPE,
                              timeout=timeout)
        os.close(slave)
        shown = b""
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not data:
                break
            shown += data
    finally:
        os.close(master)
    return proc.returncode, shown
