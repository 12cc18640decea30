"""Writable mounts without a daemon: each one a child process running
writable_harness.py (a FUSE server and a blocking client of it in one thread
deadlock), driven over its stdin/stdout and ended by pid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ADA_NAME, ADA_EMAIL = "Ada", "ada@example.org"


def mounted(mountpoint: str) -> bool:
    mp = os.path.normpath(mountpoint)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == mp for line in f)


def unmount(mountpoint: str) -> None:
    if mounted(mountpoint):
        if subprocess.run(["fusermount3", "-u", mountpoint], capture_output=True).returncode:
            subprocess.run(["fusermount3", "-u", "-z", mountpoint], capture_output=True)


class ChildDied(RuntimeError):
    pass


class Harness:
    """One child process serving a writable mount; `stop`/`kill` end it by pid."""

    def __init__(self, state: str, mountpoint: str, store_url: str, repo: str, branch: str,
                 new: bool = False, env: dict | None = None):
        self.mountpoint = mountpoint
        os.makedirs(mountpoint, exist_ok=True)
        args = [sys.executable, os.path.join(HERE, "writable_harness.py"), state, mountpoint,
                store_url, repo, branch] + (["--new"] if new else [])
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env, start_new_session=True)
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(10)
            raise RuntimeError(f"the writable mount did not start (exit {self.proc.returncode})")
        self.ready = json.loads(line)

    def call(self, op: str, **fields) -> dict:
        try:
            self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except OSError:
            line = ""
        if not line:
            raise ChildDied(f"the writable mount process died (exit {self.proc.wait(10)})")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(reply.get("error"))
        return reply

    def commit(self, message: str = "m", label: str | None = None) -> dict:
        return self.call("commit", message=message, label=label)

    def status(self) -> list[dict]:
        return self.call("status")["changes"]

    def stop(self, timeout: float = 20) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "stop"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        unmount(self.mountpoint)

    def kill(self) -> None:
        """SIGKILL, as a crash; the dead mount is detached after the process is gone."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        unmount(self.mountpoint)




class Mounts:
    """Harnesses started by a test, all ended (by pid) and unmounted at teardown."""

    def __init__(self, tmp: str, store_url: str):
        self.tmp = tmp
        self.store_url = store_url
        self.started: list[Harness] = []
        self._n = 0

    def start(self, repo: str, branch: str = "main", new: bool = False, state: str | None = None,
              mountpoint: str | None = None, env: dict | None = None) -> Harness:
        self._n += 1
        state = state or os.path.join(self.tmp, f"state{self._n}")
        mountpoint = mountpoint or os.path.join(self.tmp, f"mnt{self._n}")
        h = Harness(state, mountpoint, self.store_url, repo, branch, new, env)
        h.state = state
        self.started.append(h)
        return h

    def cleanup(self) -> None:
        for h in self.started:
            try:
                h.stop(timeout=10)
            except Exception:
                h.kill()


def small_base(store_url: str, tmp_path):
    """Repo "r" in the store (a Repository) with one bundle (`.base`): dir/old and a.txt."""
    from datamonfs.core import ingest
    from datamonfs.core.repository import Author, Repository
    from datamonfs.core.stores import open_store

    ada = Author(ADA_NAME, ADA_EMAIL)
    r = Repository(open_store(store_url))
    r.create_repo("r", "", ada)
    src = tmp_path / "src"
    (src / "dir").mkdir(parents=True)
    (src / "dir" / "old").write_bytes(b"old")
    (src / "a.txt").write_bytes(b"hello\n")
    r.base, _ = ingest.upload(r, "r", str(src), "base", ada)
    return r
