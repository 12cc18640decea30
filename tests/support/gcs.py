"""The GCS emulator (gcp-storage-emulator) on a free loopback port, and buckets in it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from typing import Iterator

from .processes import free_port, stop_process

VENV_BIN = os.path.dirname(sys.executable)


def start_emulator() -> tuple[subprocess.Popen, str]:
    """A fresh in-memory emulator on a free port, serving: (its process, its URL). The
    caller stops it (processes.stop_process)."""
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
                raise RuntimeError("gcp-storage-emulator did not start") from None
            time.sleep(0.1)


@contextmanager
def emulator() -> Iterator[str]:
    """An emulator for the block (it slows as objects accumulate: use a fresh one); its URL."""
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
