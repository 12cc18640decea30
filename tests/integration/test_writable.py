"""Writable mounts (fs/writable.py over fs/overlay/), each in a process of its own,
on both stores: POSIX errors, staging by ranges, commits that cost what changed,
open files across a commit."""

from __future__ import annotations

import errno
import os
import random
import sqlite3
import stat

import pytest
from support.files import snapshot, tree_snapshot

from datamonfs.core import ingest
from datamonfs.core.diff import diff_trees
from datamonfs.core.repository import BRANCH, Author, Repository
from datamonfs.core.stores import open_store

ADA = Author("Ada", "ada@example.org")
BIG = 12 << 20


@pytest.fixture
def repo(store_url, tmp_path):
    """Repo r whose main holds a small tree, a big file and an untouched subtree."""
    r = Repository(open_store(store_url))
    r.create_repo("r", "", ADA)
    src = tmp_path / "src"
    for rel, data in {"a.txt": b"hello\n", "dir/x": b"x", "dir/sub/y": b"y",
                      "keep/k": b"k", "big.bin": random.Random(1).randbytes(BIG)}.items():
        os.makedirs(src / os.path.dirname(rel), exist_ok=True)
        (src / rel).write_bytes(data)
    os.symlink("a.txt", src / "link")
    r.base, _ = ingest.upload(r, "r", str(src), "base", ADA)
    r.src = str(src)
    return r


def errno_of(fn, *args) -> int | None:
    try:
        fn(*args)
    except OSError as e:
        return e.errno
    return None


def test_posix_errors_and_refusals(repo, mounts):
    mp = mounts.start("r").mountpoint
    j = lambda *p: os.path.join(mp, *p)  # noqa: E731
    assert errno_of(os.rmdir, j("dir")) == errno.ENOTEMPTY
    assert errno_of(os.mkdir, j("dir")) == errno.EEXIST
    assert errno_of(os.unlink, j("dir")) == errno.EISDIR
    assert errno_of(os.rename, j("dir"), j("dir/sub/inside")) == errno.EINVAL
    assert errno_of(os.rename, j("a.txt"), j("dir")) == errno.EISDIR
    assert errno_of(os.rename, j("keep"), j("dir")) == errno.ENOTEMPTY
    assert errno_of(os.rename, j("dir"), j("a.txt")) == errno.ENOTDIR
    assert errno_of(os.rmdir, j("a.txt")) == errno.ENOTDIR
    assert errno_of(os.open, j("nope/x"), os.O_CREAT | os.O_WRONLY) == errno.ENOENT
    assert errno_of(os.open, j("a.txt"), os.O_CREAT | os.O_EXCL | os.O_WRONLY) == errno.EEXIST
    # what a bundle cannot hold is refused when made, not when committed
    assert errno_of(os.mkfifo, j("fifo")) == errno.EPERM
    assert errno_of(os.symlink, "../outside", j("bad")) == errno.EPERM
    assert errno_of(os.symlink, "/etc/passwd", j("bad")) == errno.EPERM
    assert errno_of(os.open, os.path.join(os.fsencode(mp), b"\xff"), os.O_CREAT) == errno.EILSEQ
    os.symlink("../a.txt", j("dir/up"))  # inside the dataset: fine
    assert os.path.realpath(j("dir/up")) == os.path.realpath(j("a.txt"))
    s = os.statvfs(mp)
    assert s.f_bavail > 0 and s.f_namemax == 255
    assert errno_of(os.getxattr, mp, "user.x") == errno.ENODATA


def test_big_file_stages_only_what_was_written(repo, mounts):
    h = mounts.start("r")
    mp = h.mountpoint
    with open(os.path.join(mp, "big.bin"), "r+b") as f:
        f.seek(BIG // 2)
        f.write(b"four")
        os.fsync(f.fileno())
    os.rename(os.path.join(mp, "dir"), os.path.join(mp, "moved"))  # a base directory
    with open(os.path.join(mp, "big.bin"), "rb") as f:
        data = f.read()
    want = bytearray(random.Random(1).randbytes(BIG))
    want[BIG // 2:BIG // 2 + 4] = b"four"
    assert data == want
    staged = os.path.join(h.state, "data")
    used = sum(os.stat(os.path.join(staged, n)).st_blocks * 512 for n in os.listdir(staged))
    assert used <= 64 << 10  # a sparse data file: the written range only
    db = sqlite3.connect(os.path.join(h.state, "overlay.db"))
    assert db.execute("SELECT count(*) FROM nodes").fetchone()[0] == 3  # root, big.bin, moved
    # the page around the 4 bytes (the kernel's writeback cache writes whole pages)
    assert db.execute("SELECT start, end FROM extents").fetchall() == [(BIG // 2, BIG // 2 + 4096)]
    db.close()
    assert {c["path"]: c["change"] for c in h.status()} == {
        "big.bin": "modified", "dir/": "deleted", "moved/": "added"}

    result = h.commit("poke")
    s = result["stats"]
    assert s["chunks_uploaded"] <= 2 and s["bytes_uploaded"] <= 2 * (4 << 20)
    assert s["bytes_rechunked"] < 3 * (4 << 20) and s["chunks_reused"] >= 5
    new = repo.get_bundle("r", result["bundle"])
    assert new.parents == (repo.base.id,) and repo.resolve("r:main").id == new.id
    t = repo.trees
    assert t.lookup(new.tree, "moved").tree == t.lookup(repo.base.tree, "dir").tree
    assert t.lookup(new.tree, "keep").tree == t.lookup(repo.base.tree, "keep").tree
    changes = [(c.path, c.change) for c in diff_trees(repo, repo.base.tree, new.tree)]
    assert changes == [("big.bin", "modified"), ("dir/sub/y", "deleted"), ("dir/x", "deleted"),
                       ("moved/sub/y", "added"), ("moved/x", "added")]
    assert h.status() == []
    assert os.listdir(staged) == []


def test_open_files_keep_working_across_a_commit(repo, mounts):
    h = mounts.start("r")
    path = os.path.join(h.mountpoint, "notes.txt")
    f = open(path, "w+b")
    reader = open(os.path.join(h.mountpoint, "a.txt"), "rb")
    try:
        f.write(b"first line\n")
        first = h.commit("one")["bundle"]
        f.write(b"second line\n")  # lands in the new overlay, on top of the commit
        f.seek(0)
        assert f.read() == b"first line\nsecond line\n"
        assert reader.read() == b"hello\n"
        assert [c["path"] for c in h.status()] == ["notes.txt"]
        second = h.commit("two")
        assert second["parent"] == first
    finally:
        f.close()
        reader.close()
    b = repo.get_bundle("r", second["bundle"])
    got = tree_snapshot(repo, b.tree)
    with open(path, "rb") as g:
        assert g.read() == b"first line\nsecond line\n"
    assert got["notes.txt"][2] == len(b"first line\nsecond line\n")


def test_nothing_staged_commits_nothing(repo, mounts):
    h = mounts.start("r")
    p = os.path.join(h.mountpoint, "tmp")
    with open(p, "wb") as f:
        f.write(b"gone soon")
    os.unlink(p)
    r = h.commit("noop")
    assert r["bundle"] is None and r["parent"] == repo.base.id
    assert repo.bundle_ids("r") == [repo.base.id]


def test_new_branch_from_an_empty_tree(repo, mounts, tmp_path):
    h = mounts.start("r", "scratch", new=True)
    assert os.listdir(h.mountpoint) == []
    os.makedirs(os.path.join(h.mountpoint, "d/e"))
    with open(os.path.join(h.mountpoint, "d/e/f"), "wb") as f:
        f.write(b"data")
    os.chmod(os.path.join(h.mountpoint, "d/e/f"), 0o600)
    r = h.commit("first", label="s1")
    b = repo.get_bundle("r", r["bundle"])
    assert b.parents == () and (b.files, b.bytes) == (1, 4)
    assert repo.resolve("r:scratch").id == repo.resolve("r:s1").id == b.id
    assert tree_snapshot(repo, b.tree) == snapshot(h.mountpoint, mtimes=False)
    assert repo.resolve("r:main").id == repo.base.id  # other branches untouched


def test_two_mounts_of_one_branch_fork_it(repo, mounts):
    one, two = mounts.start("r"), mounts.start("r")
    for h, name in ((one, "one"), (two, "two")):
        with open(os.path.join(h.mountpoint, name), "wb") as f:
            f.write(name.encode())
    first, second = one.commit("one"), two.commit("two")
    assert not first["forked"] and second["forked"]
    log = [r.bundle for r in repo.ref_log("r", BRANCH, "main")]
    assert log[:3] == [second["bundle"], first["bundle"], repo.base.id]
    assert repo.get_bundle("r", second["bundle"]).parents == (repo.base.id,)


def test_rename_over_existing_and_modes(repo, mounts):
    h = mounts.start("r")
    j = lambda *p: os.path.join(h.mountpoint, *p)  # noqa: E731
    os.rename(j("a.txt"), j("keep/k"))  # a base file over a base file
    os.mkdir(j("empty"))
    os.rename(j("dir/sub"), j("empty"))  # a base directory over an empty directory
    os.chmod(j("big.bin"), 0o600)
    os.utime(j("keep"), ns=(1, 1_000_000_000))
    assert sorted(os.listdir(h.mountpoint)) == ["big.bin", "dir", "empty", "keep", "link"]
    assert open(j("keep/k"), "rb").read() == b"hello\n" and os.listdir(j("empty")) == ["y"]
    assert stat.S_IMODE(os.stat(j("big.bin")).st_mode) == 0o600
    before = snapshot(h.mountpoint, mtimes=False)
    b = repo.get_bundle("r", h.commit("renames")["bundle"])
    assert tree_snapshot(repo, b.tree) == before
    big = repo.trees.lookup(b.tree, "big.bin")
    assert big.chunklist == repo.trees.lookup(repo.base.tree, "big.bin").chunklist  # not re-read
    assert repo.trees.lookup(b.tree, "keep").mtime == 1_000_000_000
