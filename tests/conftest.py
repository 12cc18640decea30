"""Shared fixtures: isolated XDG state, real stores (a local directory and the
GCS emulator on a free loopback port), and the real `datamonfs` CLI run as a
subprocess. Everything started here is ended by pid, also when a test fails."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
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


@pytest.fixture(scope="module")
def gcs_emulator():
    """A fresh gcp-storage-emulator per test module (it slows as objects accumulate)."""
    port = free_port()
    proc = subprocess.Popen(
        [os.path.join(VENV_BIN, "gcp-storage-emulator"), "start", "--host=127.0.0.1",
         f"--port={port}", "--in-memory", "-q"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gcp-storage-emulator did not start")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
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
