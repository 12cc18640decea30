"""The peers datamonfs is compared with, each started and stopped by its pid: rclone
mounts, s3fs over a local S3 endpoint (moto), DVC, and the GCS emulator with the raw
google-cloud-storage client. Each is optional: `missing()` says why one cannot run."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import Iterator

from .common import Datamonfs, Run, mounted, run, timed, unmount, wait_mounted
from .measure import OURS

VENV_BIN = os.path.dirname(sys.executable)


def missing(tool: str) -> str | None:
    """Why a peer cannot run here, or None."""
    command = {"rclone": "rclone", "s3fs": "s3fs", "moto": "moto_server", "dvc": "dvc"}[tool]
    if shutil.which(command) is None:
        return f"{command} is not installed (make bench installs it)"
    return None


LOCAL, RCLONE = "local disk", "rclone"


@contextmanager
def writable_targets(work: str, dm: Datamonfs, repo: str) -> Iterator[tuple[dict, list]]:
    """Where a write scenario writes, by column: a plain directory (the limit), a new
    branch of `repo` mounted writable, and a writable `rclone mount --vfs-cache-mode
    full` when rclone is installed; and notes for the report. All unmounted at the end."""
    local_dir = os.path.join(work, "local")
    os.makedirs(local_dir)
    targets = {LOCAL: local_dir, OURS: dm.mount(repo, f"m-{repo}", "--rw", "--new",
                                                "--branch", "scratch")}
    notes: list[str] = []
    rclone_mount = None
    try:
        if why := missing("rclone"):
            notes.append(f"rclone not run: {why}.")
        else:
            backing = os.path.join(work, "rclone-backing")
            os.makedirs(backing)
            rclone_mount = Rclone(work).mount(backing, os.path.join(work, "m-rclone"),
                                              writable=True)
            targets[RCLONE] = rclone_mount.mountpoint
        yield targets, notes
    finally:
        if rclone_mount:
            rclone_mount.close()
        dm.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{what} did not start") from None
            time.sleep(0.1)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class FuseProcess:
    """A FUSE filesystem served by a foreground process of a peer."""

    def __init__(self, cmd: list[str], mountpoint: str, timeout: float = 30):
        os.makedirs(mountpoint, exist_ok=True)
        self.mountpoint = mountpoint
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        try:
            wait_mounted(mountpoint, self.proc, timeout)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if mounted(self.mountpoint):
            subprocess.run(["fusermount3", "-u", self.mountpoint], capture_output=True)
        stop(self.proc)
        unmount(self.mountpoint)


class Rclone:
    """`rclone mount --vfs-cache-mode full` of a local directory; each mount() starts with
    an empty VFS cache."""

    def __init__(self, work: str):
        self.work = work
        self.conf = os.path.join(work, "rclone.conf")
        with open(self.conf, "w") as f:
            f.write("[local]\ntype = local\n")

    def mount(self, source: str, mountpoint: str, writable: bool = False) -> FuseProcess:
        cache = os.path.join(self.work, f"rclone-cache-{os.path.basename(mountpoint)}")
        shutil.rmtree(cache, ignore_errors=True)
        cmd = ["rclone", "mount", f"local:{source}", mountpoint, "--config", self.conf,
               "--vfs-cache-mode", "full", "--cache-dir", cache]
        return FuseProcess(cmd + ([] if writable else ["--read-only"]), mountpoint)


class S3:
    """A local S3 endpoint (moto's server, in memory) filled with rclone, mounted with s3fs;
    each mount() starts with an empty s3fs disk cache."""

    BUCKET = "bench"

    def __init__(self, work: str):
        self.work = work
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(self.port)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       start_new_session=True)
        try:
            wait_port(self.port, self.server, "moto_server")
            self.passwd = os.path.join(work, "s3.passwd")
            with open(self.passwd, "w") as f:
                f.write("bench:benchsecret\n")
            os.chmod(self.passwd, 0o600)
            self.conf = os.path.join(work, "rclone-s3.conf")
            with open(self.conf, "w") as f:
                f.write(f"[s3]\ntype = s3\nprovider = Other\nendpoint = {self.url}\n"
                        "access_key_id = bench\nsecret_access_key = benchsecret\n"
                        "force_path_style = true\n")
            # rclone 1.60's S3 backend fails on any AWS_CA_BUNDLE, even for plain HTTP
            self.rclone_env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
            timed(["rclone", "mkdir", f"s3:{self.BUCKET}", "--config", self.conf],
                  env=self.rclone_env)
        except BaseException:
            self.close()
            raise

    def upload(self, source: str, prefix: str) -> None:
        timed(["rclone", "copy", source, f"s3:{self.BUCKET}/{prefix}", "--config", self.conf,
               "--transfers", "16", "--checkers", "16"], env=self.rclone_env)

    def mount(self, mountpoint: str) -> FuseProcess:
        cache = os.path.join(self.work, f"s3fs-cache-{os.path.basename(mountpoint)}")
        shutil.rmtree(cache, ignore_errors=True)
        os.makedirs(cache)
        return FuseProcess(["s3fs", self.BUCKET, mountpoint, "-f", "-o", f"url={self.url}",
                            "-o", "use_path_request_style", "-o", f"passwd_file={self.passwd}",
                            "-o", "ro", "-o", f"use_cache={cache}"], mountpoint)

    def close(self) -> None:
        stop(self.server)


class Dvc:
    """DVC in a workspace holding the dataset as `data/`, pushing to a local remote."""

    def __init__(self, workspace: str, remote: str):
        self.workspace = workspace
        self.remote = remote
        self.env = dict(os.environ, DVC_NO_ANALYTICS="1")

    def dvc(self, *args: str) -> Run:
        return run(["dvc", *args], env=self.env, cwd=self.workspace)

    def reset(self) -> None:
        """A DVC project with an empty cache and an empty remote."""
        for name in (".dvc", "data.dvc", ".dvcignore"):
            path = os.path.join(self.workspace, name)
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else (
                os.path.exists(path) and os.unlink(path))
        shutil.rmtree(self.remote, ignore_errors=True)
        os.makedirs(self.remote)
        self.dvc("init", "--no-scm", "-q")
        self.dvc("remote", "add", "-d", "bench", self.remote)

    def add_and_push(self) -> tuple[float, float]:
        """`dvc add data` + `dvc push`, what a DVC user runs to save a version: (seconds,
        peak RSS MB)."""
        add, push = self.dvc("add", "-q", "data"), self.dvc("push", "-q")
        return add.seconds + push.seconds, max(add.peak_rss_mb, push.peak_rss_mb)

    def trim_cache(self) -> None:
        """Drop cached objects the workspace no longer uses (the remote keeps them), so
        that ten versions of a large dataset fit on the disk twice over."""
        self.dvc("gc", "--workspace", "--force", "-q")


class GcsEmulator:
    """A fresh in-memory gcp-storage-emulator with one bucket (it slows as objects
    accumulate, so every measurement gets a new one), counting the HTTP requests it
    serves: `requests()` is the count since the bucket was made."""

    BUCKET = "bench"

    def __init__(self):
        self.port = free_port()
        self.host = f"http://127.0.0.1:{self.port}"
        fd, self.counts = tempfile.mkstemp(prefix="gcs-requests-")
        os.close(fd)
        self.proc = subprocess.Popen([sys.executable, "-c", _COUNTING_EMULATOR, str(self.port),
                                      self.counts],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        wait_port(self.port, self.proc, "gcp-storage-emulator")
        self.env = dict(os.environ, STORAGE_EMULATOR_HOST=self.host)
        timed([sys.executable, "-c", _MAKE_BUCKET, self.BUCKET], env=self.env)
        self.baseline = self._count()

    def _count(self) -> int:
        """Requests served so far: the emulator writes its count when signalled."""
        os.truncate(self.counts, 0)
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(self.counts) as f:
                text = f.read()
            if text.endswith("\n"):
                return int(text)
            time.sleep(0.01)
        raise SystemExit("the GCS emulator did not report its request count")

    def requests(self) -> int:
        return self._count() - self.baseline

    def raw_upload(self, source: str) -> float:
        """Seconds for the raw google-cloud-storage client to upload every file of source as
        one object, 8 at a time (datamonfs' upload parallelism)."""
        return timed([sys.executable, "-c", _RAW_UPLOAD, source, self.BUCKET], env=self.env)

    def close(self) -> None:
        stop(self.proc)
        os.unlink(self.counts)


# The emulator (its own single-threaded HTTP server), counting every request it routes;
# SIGUSR1 writes the count, a line, into the file named on the command line. Its listen
# backlog is raised from 5: with thousands of objects it takes long enough per request
# that 8 clients connecting at once time out in the kernel's queue.
_COUNTING_EMULATOR = """
import os, signal, sys, time
from gcp_storage_emulator import server
server.server.HTTPServer.request_queue_size = 128
port, counts = int(sys.argv[1]), sys.argv[2]
served = [0]
handle = server.Router.handle
def counting(self, method):
    served[0] += 1
    return handle(self, method)
server.Router.handle = counting
def report(*_):
    with open(counts, "w") as f:
        f.write(f"{served[0]}\\n")
signal.signal(signal.SIGUSR1, report)
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
emulator = server.create_server("127.0.0.1", port, in_memory=True)
emulator.start()
while True:
    time.sleep(1)
"""


_CLIENT = """
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
client = storage.Client(project="bench", credentials=AnonymousCredentials())
"""
_MAKE_BUCKET = _CLIENT + "import sys; client.create_bucket(sys.argv[1])\n"
_RAW_UPLOAD = _CLIENT + """
import os, sys
from concurrent.futures import ThreadPoolExecutor
root, bucket = sys.argv[1], client.bucket(sys.argv[2])
paths = [os.path.join(d, n) for d, _, names in os.walk(root) for n in names]
def put(path):
    bucket.blob(os.path.relpath(path, root)).upload_from_filename(path)
with ThreadPoolExecutor(8) as pool:
    list(pool.map(put, paths))
"""
