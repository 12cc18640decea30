"""Shared fixtures: isolated XDG state, real stores (a local directory and the
GCS emulator on a free loopback port), and the real `datamonfs` CLI run as a
subprocess. Everything started here is ended by pid, also when a test fails."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass

import pytest

VENV_BIN = os.path.dirname(sys.executable)
DATAMONFS = os.path.join(VENV_BIN, "datamonfs")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_emulator() -> tuple[subprocess.Popen, str]:
    """A gcp-storage-emulator on a free port, serving: (its process, its URL)."""
    port = free_port()
    proc = subprocess.Popen(
        [os.path.join(VENV_BIN, "gcp-storage-emulator"), "start", "--host=127.0.0.1",
         f"--port={port}", "--in-memory", "-q"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_process(proc)
                raise RuntimeError("gcp-storage-emulator did not start")
            time.sleep(0.1)


@pytest.fixture(scope="module")
def gcs_emulator():
    """A fresh gcp-storage-emulator per test module (it slows as objects accumulate)."""
    proc, url = start_emulator()
    try:
        yield url
    finally:
        stop_process(proc)


def make_bucket(emulator: str) -> str:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    os.environ["STORAGE_EMULATOR_HOST"] = emulator
    name = "b" + uuid.uuid4().hex[:16]
    client = storage.Client(project="datamonfs", credentials=AnonymousCredentials())
    client.create_bucket(name)
    client.close()
    return name


@pytest.fixture(params=["local", "gcs"])
def store_url(request, tmp_path, monkeypatch):
    """A fresh, empty store of each kind: file://DIR and gs://BUCKET/PREFIX."""
    if request.param == "local":
        yield "file://" + str(tmp_path / "store")
        return
    emulator = request.getfixturevalue("gcs_emulator")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator)
    yield f"gs://{make_bucket(emulator)}/dm"


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


@pytest.fixture
def cli(tmp_path, store_url):
    """The CLI with a config (author Ada) on a fresh store of each kind."""
    c = CLI(str(tmp_path / "home"), store_url)
    c("config", "create", "--name", "Ada", "--email", "ada@example.org")
    return c


# -- the daemon and its mounts (tests/test_daemon*.py, tests/test_mount*.py) ----------------


def _mounts_under(prefix: str) -> list[str]:
    """Mountpoints below `prefix`, deepest first, read from the mount table (never stat-ed:
    a dead FUSE mount fails a stat and a hung one blocks it)."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp == prefix or mp.startswith(prefix.rstrip("/") + "/"):
                found.append(mp)
    return sorted(found, key=len, reverse=True)


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return kids


def _kill(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_for(predicate, timeout: float = 20, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


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
        import json

        doc = json.loads(self.cli("daemon", "status", "--json").out)
        self.pids.add(doc["pid"])
        self.pids.update(w["pid"] for w in doc["workers"].values())
        return doc

    def mounts(self) -> list[dict]:
        import json

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
        import json

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
            self.pids.update(_children(pid))
        try:
            self.pids.add(self.pid())
        except (OSError, ValueError):
            pass
        for pid in list(self.pids):
            self.pids.update(_children(pid))
        for mp in _mounts_under(self.root):
            if subprocess.run(["fusermount3", "-u", mp], capture_output=True).returncode:
                subprocess.run(["fusermount3", "-u", "-z", mp], capture_output=True)
        for pid in self.pids:
            _kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while any(_alive(p) for p in self.pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in self.pids:
            _kill(pid)
        for mp in _mounts_under(self.root):  # after the workers are gone: lazily
            subprocess.run(["fusermount3", "-u", "-z", mp], capture_output=True)
        shutil.rmtree(self.sockdir, ignore_errors=True)


@pytest.fixture
def daemon(cli, tmp_path):
    """A started daemon for the `cli` fixture's user. Teardown unmounts every mount below
    tmp_path and ends the daemon and its workers by pid, also when the test failed."""
    d = Daemon(cli, str(tmp_path / "mnt"))
    os.makedirs(d.root, exist_ok=True)
    try:
        d.start()
        yield d
    finally:
        d.cleanup()


@pytest.fixture
def mounts(tmp_path, store_url):
    """Writable FUSE sessions run in child processes (tests/writable_harness.py), all
    unmounted and ended when the test ends, also on failure."""
    from writable_harness import Mounts

    m = Mounts(str(tmp_path), store_url)
    try:
        yield m
    finally:
        m.cleanup()
