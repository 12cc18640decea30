"""Shared by the benchmark scripts: scratch dirs, timed subprocesses with peak RSS, tables."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATAMONFS = os.path.join(os.path.dirname(sys.executable), "datamonfs")


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float
    stdout: str
    stderr: str


# A small launcher process spawns the command and reports its rusage: measured
# directly, a child forked from this (large) process would count our pages too.
_LAUNCHER = """
import os, sys
report = int(sys.argv[1])
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
os.write(report, str(usage.ru_maxrss).encode())
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run(cmd: list[str], env: dict | None = None) -> Run:
    """Run a command to completion: its wall time and its own peak RSS."""
    read_fd, write_fd = os.pipe()
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(write_fd), *cmd], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            pass_fds=(write_fd,))
    os.close(write_fd)
    out, err = proc.communicate()
    seconds = time.perf_counter() - start
    with os.fdopen(read_fd) as f:
        maxrss_kib = int(f.read() or 0)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err}")
    return Run(seconds, maxrss_kib / 1024, out, err)


def scratch(name: str) -> str:
    """A fresh directory on the repo's disk (not tmpfs), removed on the next run."""
    path = os.path.join(REPO_ROOT, "bench", "work", name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def isolated_env(home: str, store: str) -> dict:
    env = dict(os.environ)
    for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"),
                     ("XDG_CACHE_HOME", "cache"), ("XDG_STATE_HOME", "state"),
                     ("XDG_RUNTIME_DIR", "run")):
        env[var] = os.path.join(home, sub)
        os.makedirs(env[var], mode=0o700, exist_ok=True)
    env["DATAMONFS_STORE"] = store
    env.pop("DATAMONFS_CONFIG", None)
    return env


def drop_caches() -> bool:
    try:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def table(title: str, header: list[str], rows: list[list]) -> str:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [f"\n## {title}", "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells[1:]]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def mb(n: float) -> str:
    return f"{n / 1e6:.1f}"
