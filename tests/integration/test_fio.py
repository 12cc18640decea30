"""fio with data verification on a writable mount (the benchmark runs a longer one):
every block written reads back with its crc32c, also after a commit, and a commit
taken while a writer rewrites a file holds no torn block."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading

import pytest

from datamonfs.core.repository import Author, Repository
from datamonfs.core.stores import open_store

pytestmark = [pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed"),
              pytest.mark.parametrize("store_url", ["local"], indirect=True)]
ADA = Author("Ada", "ada@example.org")
JOB = ["--name=verify", "--rw=randwrite", "--bs=4k", "--numjobs=2", "--size=12M",
       "--verify=crc32c", "--verify_fatal=1", "--verify_state_save=0", "--randrepeat=1"]


def fio(directory: str, *args: str) -> dict:
    out = subprocess.run(["fio", f"--directory={directory}", "--output-format=json",
                          "--group_reporting", *JOB, *args],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads(out.stdout[out.stdout.index("{"):])
    assert report["jobs"][0]["error"] == 0
    return report["jobs"][0]


@pytest.fixture
def repo(store_url):
    r = Repository(open_store(store_url))
    r.create_repo("r", "", ADA)
    return r


def test_fio_reads_back_every_block_it_wrote(repo, mounts):
    mp = mounts.start("r", "main", new=True).mountpoint
    job = fio(mp, "--fallocate=native")
    assert job["write"]["io_bytes"] == 24 << 20 and job["read"]["io_bytes"] == 24 << 20


def test_fio_verifies_what_it_wrote_after_a_commit(repo, mounts):
    h = mounts.start("r", "main", new=True)
    fio(h.mountpoint, "--do_verify=0")
    bundle = repo.get_bundle("r", h.commit("fio files")["bundle"])
    assert bundle.bytes == 24 << 20
    job = fio(h.mountpoint, "--verify_only")  # now read from the committed bundle
    assert job["read"]["io_bytes"] == 24 << 20


BLOCK, BLOCKS = 4096, 2048  # an 8 MiB file of self-describing blocks


def block(index: int, generation: int) -> bytes:
    head = f"{index:08d}:{generation:08d}:".encode()
    body = hashlib.sha256(head).digest() * ((BLOCK - len(head)) // 32 + 1)
    return (head + body)[:BLOCK]


def test_a_commit_while_a_writer_rewrites_a_file_has_no_torn_block(repo, mounts):
    h = mounts.start("r", "main", new=True)
    path = os.path.join(h.mountpoint, "rewritten.bin")
    with open(path, "wb") as f:
        f.write(b"".join(block(i, 0) for i in range(BLOCKS)))
    stop = threading.Event()
    rounds = []

    def writer():
        generation = 0
        with open(path, "r+b", buffering=0) as f:
            while not stop.is_set():
                generation += 1
                for i in range(0, BLOCKS, 7):  # a stride, so each round touches every 7th
                    os.pwrite(f.fileno(), block(i, generation), i * BLOCK)
                rounds.append(generation)

    t = threading.Thread(target=writer)
    t.start()
    try:
        while len(rounds) < 2:
            t.join(0.05)
        results = [h.commit(f"during round {len(rounds)}")["bundle"] for _ in range(2)]
    finally:
        stop.set()
        t.join(60)
    assert len(rounds) >= 2
    for bundle_id in results:
        entry = repo.trees.lookup(repo.get_bundle("r", bundle_id).tree, "rewritten.bin")
        data = b"".join(repo.chunks.read_chunks(repo.trees.chunks(entry)))
        assert len(data) == BLOCK * BLOCKS
        for i in range(BLOCKS):
            got = data[i * BLOCK:(i + 1) * BLOCK]
            generation = int(got[9:17])
            assert got == block(i, generation), f"block {i} is torn in bundle {bundle_id[:12]}"
