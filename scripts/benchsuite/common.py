"""Shared by every scenario: scratch space, timed commands with their peak RSS, kernel
caches, and a datamonfs instance of its own (config, store, cache, daemon) per scenario."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATAMONFS = os.path.join(os.path.dirname(sys.executable), "datamonfs")
MiB = 1 << 20


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


def run(cmd: list[str], env: dict | None = None, cwd: str | None = None) -> Run:
    """Run a command to completion: its wall time and its own peak RSS."""
    read_fd, write_fd = os.pipe()
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(write_fd), *cmd], env=env,
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            pass_fds=(write_fd,))
    os.close(write_fd)
    out, err = proc.communicate()
    seconds = time.perf_counter() - start
    with os.fdopen(read_fd) as f:
        maxrss_kib = int(f.read() or 0)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-2000:]}")
    return Run(seconds, maxrss_kib / 1024, out, err)


def timed(cmd: list[str] | str, cwd: str | None = None, env: dict | None = None) -> float:
    """Wall seconds of a command (a string runs in the shell)."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, shell=isinstance(cmd, str), cwd=cwd, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{cmd if isinstance(cmd, str) else ' '.join(cmd)} failed "
                         f"({proc.returncode}):\n{proc.stderr[-2000:]}")
    return seconds


def scratch(name: str) -> str:
    """A fresh directory on the repo's disk (not tmpfs), emptied on the next run."""
    path = os.path.join(REPO_ROOT, "bench", "work", name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def can_drop_caches() -> bool:
    return os.access("/proc/sys/vm/drop_caches", os.W_OK)


def drop_caches() -> None:
    """Empty the kernel's page, dentry and inode caches (root only; else a no-op that the
    report mentions)."""
    subprocess.run(["sync"], check=True)
    if can_drop_caches():
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")


def mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def wait_mounted(path: str, proc: subprocess.Popen | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not mounted(path):
        if (proc and proc.poll() is not None) or time.monotonic() > deadline:
            raise SystemExit(f"{path} did not get mounted")
        time.sleep(0.05)


def unmount(path: str) -> None:
    if mounted(path):
        if subprocess.run(["fusermount3", "-u", path], capture_output=True).returncode:
            subprocess.run(["fusermount3", "-u", "-z", path], capture_output=True)


def walk(root: str, expect: int) -> float:
    """Files per second of `find -type f` printing every file's size (a stat each)."""
    start = time.perf_counter()
    out = subprocess.run(["find", root, "-type", "f", "-printf", "%s\n"], check=True,
                         capture_output=True, text=True).stdout
    seconds = time.perf_counter() - start
    if len(out.splitlines()) != expect:
        raise SystemExit(f"find saw {len(out.splitlines())} files in {root}, expected {expect}")
    return expect / seconds


def tree_bytes(path: str) -> int:
    """Bytes of every regular file under path (what a store occupies)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def metadata_bytes(store: str) -> int:
    """Bytes of a local store's metadata: tree and chunk-list objects (meta/) and, from
    format 2 on, pack indexes (packidx/)."""
    return sum(tree_bytes(os.path.join(store, d)) for d in ("meta", "packidx"))


def rss_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident MiB of a live process."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


class Datamonfs:
    """One isolated datamonfs: its own config, local store, block cache, daemon socket."""

    def __init__(self, work: str, store: str | None = None, env: dict | None = None):
        self.work = work
        self.home = os.path.join(work, "dm-home")
        self.store_dir = os.path.join(work, "dm-store")
        self.env = dict(env or os.environ)
        for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"),
                         ("XDG_CACHE_HOME", "cache"), ("XDG_STATE_HOME", "state"),
                         ("XDG_RUNTIME_DIR", "run")):
            self.env[var] = os.path.join(self.home, sub)
            os.makedirs(self.env[var], mode=0o700, exist_ok=True)
        self.env["DATAMONFS_STORE"] = store or "file://" + self.store_dir
        self.env["DATAMONFS_SOCKET"] = os.path.join(self.home, "run", "d.sock")
        self.env.pop("DATAMONFS_CONFIG", None)
        self.mounts: list[str] = []
        self("config", "create", "--name", "Bench", "--email", "bench@example.org")

    def __call__(self, *args: str) -> str:
        proc = subprocess.run([DATAMONFS, *args], env=self.env, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"datamonfs {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def run(self, *args: str) -> Run:
        """A timed datamonfs command with its peak RSS."""
        return run([DATAMONFS, *args], env=self.env)

    def mount(self, ref: str, name: str, *options: str) -> str:
        mp = os.path.join(self.work, name)
        os.makedirs(mp, exist_ok=True)
        self("mount", *options, ref, mp)
        self.mounts.append(mp)
        return mp

    def unmount(self, mp: str, *options: str) -> None:
        self("unmount", *options, mp)
        self.mounts.remove(mp)

    def clear_cache(self) -> None:
        self("cache", "clear")

    def daemon_pids(self) -> list[int]:
        """The supervisor and every mount worker."""
        records = json.loads(self("mounts", "--json"))
        pids = {r["daemon_pid"] for r in records} | {r["worker_pid"] for r in records}
        return sorted(p for p in pids if p)

    def close(self) -> None:
        for mp in reversed(self.mounts):
            subprocess.run([DATAMONFS, "unmount", "--discard", mp], env=self.env,
                           capture_output=True)
        subprocess.run([DATAMONFS, "daemon", "stop"], env=self.env, capture_output=True)
        for mp in self.mounts:
            unmount(mp)
        self.mounts.clear()
