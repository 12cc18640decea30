"""The installed `datamonfs` command, run as a subprocess in an isolated environment."""

from __future__ import annotations

import os
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
