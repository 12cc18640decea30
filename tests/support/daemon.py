"""A datamonfs daemon on a socket of its own, driven through the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile

from .cli import CLI
from .processes import children_of, mounts_under, terminate_all


class Daemon:
    """A datamonfs daemon on a socket of its own, driven through the real CLI."""

    def __init__(self, cli: CLI, root: str):
        self.cli = cli
        self.root = root  # every mountpoint of the test lives below it
        self.sockdir = tempfile.mkdtemp(prefix="dmd-", dir="/tmp")
        self.socket = os.path.join(self.sockdir, "daemon.sock")
        cli.env["DATAMONFS_SOCKET"] = self.socket
        self.pids: set[int] = set()  # every daemon and worker pid seen, for cleanup
        self._n = 0

    def start(self) -> int:
        self.cli("daemon", "start")
        return self.pid()

    def pid(self) -> int:
        with open(self.socket + ".lock") as f:
            pid = int(f.read().strip())
        self.pids.add(pid)
        return pid

    def status(self) -> dict:
        doc = json.loads(self.cli("daemon", "status", "--json").out)
        self.pids.add(doc["pid"])
        self.pids.update(w["pid"] for w in doc["workers"].values())
        return doc

    def mounts(self) -> list[dict]:
        records = json.loads(self.cli("mounts", "--json").out)
        self.pids.update(r["worker_pid"] for r in records)
        return records

    def mountpoint(self, name: str | None = None) -> str:
        self._n += 1
        path = os.path.join(self.root, name or f"mnt{self._n}")
        os.makedirs(path, exist_ok=True)
        return path

    def mount(self, ref: str, mountpoint: str | None = None) -> str:
        mp = mountpoint or self.mountpoint()
        self.cli("mount", ref, mp)
        self.mounts()
        return mp

    def request(self, payload: bytes, timeout: float = 10) -> list[dict]:
        """Send raw bytes on a fresh connection; the reply lines, parsed, until the daemon
        has answered every line sent (or closes)."""
        expected = max(payload.count(b"\n"), 1)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.socket)
            s.sendall(payload)
            data = b""
            while data.count(b"\n") < expected:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return [json.loads(line) for line in data.splitlines() if line.strip()]

    def cleanup(self) -> None:
        for pid in list(self.pids):
            self.pids.update(children_of(pid))
        try:
            self.pids.add(self.pid())
        except (OSError, ValueError):
            pass
        for pid in list(self.pids):
            self.pids.update(children_of(pid))
        for mp in mounts_under(self.root):
            if subprocess.run(["fusermount3", "-u", mp], capture_output=True).returncode:
                subprocess.run(["fusermount3", "-u", "-z", mp], capture_output=True)
        terminate_all(self.pids)
        for mp in mounts_under(self.root):  # after the workers are gone: lazily
            subprocess.run(["fusermount3", "-u", "-z", mp], capture_output=True)
        shutil.rmtree(self.sockdir, ignore_errors=True)
