"""Downloads that resume, and --delete as rclone sync (issue 18, item 12)."""

from __future__ import annotations

import json
import os

import pytest
from support.files import snapshot, write

from support.cli import one_line_error

MARKER = ".datamonfs-download"


@pytest.fixture
def bundle(cli, tmp_path):
    folder = tmp_path / "data"
    for i in range(6):
        write(folder, f"d{i % 2}/f{i}.bin", os.urandom(200_000 + i))
    write(folder, "top.txt", b"top\n")
    cli("repo", "create", "r")
    cli("bundle", "upload", "r", str(folder), "-m", "x")
    return folder


def inodes(root) -> dict:
    return {os.path.relpath(os.path.join(d, n), root): os.lstat(os.path.join(d, n)).st_ino
            for d, _, files in os.walk(root) for n in files}


def test_an_interrupted_download_resumes_keeping_what_is_complete(cli, bundle, tmp_path):
    out = tmp_path / "out"
    cli("bundle", "download", "r", str(out))
    assert not (out / MARKER).exists() and snapshot(out) == snapshot(bundle)
    # What a download killed half way leaves: its marker, files not written yet, a temp
    # file being written. And a file changed since (it must be written again).
    bundle_id = json.loads(cli("bundle", "get", "r", "--json").out)["id"]
    (out / MARKER).write_text(json.dumps({"repo": "r", "bundle": bundle_id}))
    os.unlink(out / "d0" / "f2.bin")
    (out / "d1" / ".datamonfs-0123456789ab").write_bytes(b"partial")
    with open(out / "d1" / "f3.bin", "r+b") as f:
        f.write(b"X")
    before = inodes(out)
    r = cli("bundle", "download", "r", str(out))  # no flag: the marker says it is ours
    assert "5 already complete, kept" in r.err
    assert snapshot(out) == snapshot(bundle) and not (out / MARKER).exists()
    after = inodes(out)
    kept = {p for p in after if before.get(p) == after[p]}
    assert kept == {"top.txt", "d0/f0.bin", "d0/f4.bin", "d1/f1.bin", "d1/f5.bin"}


def test_resume_into_another_folder_and_delete_what_the_bundle_lacks(cli, bundle, tmp_path):
    out = tmp_path / "out"
    write(out, "top.txt", b"top\n")
    write(out, "extra/old.txt", b"old")
    write(out, "d0/stray.bin", b"stray")
    one_line_error(cli("bundle", "download", "r", str(out), expect=1), "not empty", "--resume")
    r = cli("bundle", "download", "r", str(out), "--resume")
    assert (out / "extra" / "old.txt").exists() and "1 already complete" in r.err
    r = cli("bundle", "download", "r", str(out), "--delete")
    assert "2 not in the bundle, deleted" in r.err and "7 already complete" in r.err
    assert snapshot(out) == snapshot(bundle)
    one_line_error(cli("bundle", "download", "r", str(out), "--delete", "--filter", "*.txt",
                       expect=1), "cannot be combined with --filter")
    # --force is the same flag as --resume
    cli("bundle", "download", "r", str(out), "--force")
