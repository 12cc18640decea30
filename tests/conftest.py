"""Fixtures shared by both tiers.

tests/unit/ runs in-process, without a kernel mount, a daemon or a CLI subprocess (the
store is a local directory, or the GCS emulator in tests marked `gcs`); tests/integration/
uses the real parts: FUSE mounts, daemons, the CLI, the emulator. Everything a fixture
starts is ended by pid, also when the test fails. The helpers the fixtures use are in
tests/support/ (this file's directory is on the path, so `from support.X import ...`).

A test fails when it logs a warning or an error it did not announce with
`@pytest.mark.expect_log("text")`, and so does an integration test whose daemon logged a
traceback.
"""

from __future__ import annotations

import glob
import logging
import os
import subprocess
import sys

import pytest

from support.cli import CLI
from support.daemon import Daemon
from support.gcs import emulator, make_bucket
from support.writable import Mounts


def pytest_configure(config):
    config.addinivalue_line("markers", "gcs: uses the GCS emulator (left out by `make check`)")
    config.addinivalue_line("markers", "expect_log(*texts): warnings or errors the test expects "
                                       "in its log, each containing one of the texts")


def pytest_collection_modifyitems(config, items):
    for item in items:
        params = getattr(item, "callspec", None)
        if (params and params.params.get("store_url") == "gcs") or "gcs_emulator" in getattr(
                item, "fixturenames", ()):
            item.add_marker(pytest.mark.gcs)


def _expected(request) -> tuple[str, ...]:
    texts = tuple(t for m in request.node.iter_markers("expect_log") for t in m.args)
    if request.node.get_closest_marker("gcs"):
        # The emulator is one Python process: on a loaded machine a large upload can take
        # longer than the store's notice threshold. Saying so is right, not a defect.
        texts += ("is not answering; retrying",)
    return texts


@pytest.fixture(autouse=True)
def no_unexpected_log(request, caplog):
    """Fail a test that logged a warning or an error it did not announce."""
    caplog.set_level(logging.WARNING)
    yield
    expected = _expected(request)
    bad = [r for r in caplog.get_records("call") + caplog.get_records("setup")
           if r.levelno >= logging.WARNING and not any(t in r.getMessage() for t in expected)]
    if bad:
        pytest.fail("unexpected log: " + "; ".join(f"{r.levelname} {r.name}: {r.getMessage()}"
                                                    for r in bad[:5]), pytrace=False)


@pytest.fixture(scope="module")
def gcs_emulator():
    """A fresh gcp-storage-emulator per test module (it slows as objects accumulate)."""
    with emulator() as url:
        yield url


@pytest.fixture(params=["local", "gcs"])
def store_url(request, tmp_path, monkeypatch):
    """A fresh, empty store of each kind: file://DIR and gs://BUCKET/PREFIX."""
    if request.param == "local":
        yield "file://" + str(tmp_path / "store")
        return
    url = request.getfixturevalue("gcs_emulator")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
    yield f"gs://{make_bucket(url)}/dm"


@pytest.fixture
def cli(tmp_path, store_url):
    """The CLI with a config (author Ada) on a fresh store of each kind."""
    c = CLI(str(tmp_path / "home"), store_url)
    c("config", "create", "--name", "Ada", "--email", "ada@example.org")
    return c


@pytest.fixture
def daemon(cli, tmp_path, request):
    """A started daemon for the `cli` fixture's user. Teardown unmounts every mount below
    tmp_path and ends the daemon and its workers by pid, also when the test failed; then
    the daemon's log must hold no traceback the test did not announce."""
    d = Daemon(cli, str(tmp_path / "mnt"))
    os.makedirs(d.root, exist_ok=True)
    try:
        d.start()
        yield d
    finally:
        d.cleanup()
    expected = _expected(request)
    for log in glob.glob(os.path.join(cli.home, "state", "**", "daemon.log*"), recursive=True):
        with open(log, errors="replace") as f:
            text = f.read()
        if "Traceback" in text and not any(t in text for t in expected):
            pytest.fail(f"the daemon logged a traceback ({log}):\n{text[-3000:]}",
                        pytrace=False)


@pytest.fixture
def mounts(tmp_path, store_url):
    """Writable FUSE sessions run in child processes (support/writable_harness.py), all
    unmounted and ended when the test ends, also on failure."""
    m = Mounts(str(tmp_path), store_url)
    try:
        yield m
    finally:
        m.cleanup()


@pytest.fixture
def children():
    """Start `python -c CODE ARGS...` children; any still running at the end are killed."""
    procs: list[subprocess.Popen] = []

    def start(code: str, *args: str, **kw) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, **kw)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe:
                pipe.close()
