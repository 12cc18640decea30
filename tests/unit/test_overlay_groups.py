"""Group commits of the overlay database and small files kept in their rows: what another
connection (a restarted mount) sees, before and after a group is committed, and after a
real SIGKILL between a change and the commit of its group."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time

import pytest
from support.overlays import Content, one_file_base, overlay_in
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datamonfs.core.repository import Author
from datamonfs.fs.overlay import Overlay
from datamonfs.fs.overlay.staged import INLINE_MAX, KEEP_SIZE, PUNCH_HOLE
from datamonfs.fs.vfs import ROOT, FsError

ADA = Author("Ada", "ada@example.org")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return one_file_base(tmp_path_factory.mktemp("base"), 200_000)


def create(directory, repo, bundle) -> Overlay:
    return overlay_in(directory, repo, bundle)


def reopen(directory, repo) -> Overlay:
    return Overlay(str(directory), repo.trees, lambda c: Content(repo, c))


def committed(directory, sql):
    """What a second connection (a restarted mount) reads."""
    db = sqlite3.connect(os.path.join(directory, "overlay.db"))
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_changes_reach_other_connections_when_their_group_commits(base, tmp_path):
    repo, bundle = base
    ov = create(tmp_path / "ov", repo, bundle)
    ov.db.group_seconds = 3600  # only flush commits here
    try:
        node = ov.create(ROOT, b"new", 0o644)
        ov.write(node.ino, 0, b"small")
        names = "SELECT name FROM dirents WHERE ino IS NOT NULL"
        assert committed(tmp_path / "ov", names) == []
        assert ov.read(node.ino, 0, 10) == b"small"  # this connection sees its group
        ov.flush()
        assert committed(tmp_path / "ov", names) == [(b"new",)]
        assert committed(tmp_path / "ov", "SELECT data FROM extents") == [(b"small",)]
        assert os.listdir(ov.data.dir) == []  # kept in the row: no data file
        # a failed change in a group leaves the group's other changes in it
        ov.mkdir(ROOT, b"d1", 0o755)
        with pytest.raises(FsError):
            ov.mkdir(ROOT, b"d1", 0o755)
        ov.mkdir(ROOT, b"d2", 0o755)
        ov.unlink(ROOT, b"new")
    finally:
        ov.close()  # commits the open group
    assert sorted(committed(tmp_path / "ov", names)) == [(b"d1",), (b"d2",)]
    assert committed(tmp_path / "ov", "SELECT count(*) FROM extents") == [(0,)]


def test_the_committer_thread_commits_a_group_without_being_asked(base, tmp_path):
    repo, bundle = base
    ov = create(tmp_path / "ov", repo, bundle)
    try:
        ov.mkdir(ROOT, b"soon", 0o755)
        seen = "SELECT name FROM dirents WHERE name = x'736f6f6e'"  # b"soon"
        for _ in range(600):  # it comes GROUP_SECONDS later; waited for, not timed
            if committed(tmp_path / "ov", seen):
                break
            time.sleep(0.05)
        assert committed(tmp_path / "ov", seen) == [(b"soon",)]
    finally:
        ov.close()


def _killed_after(directory, repo, bundle, writes: int) -> None:
    """In a child: small files, each flushed as close(2) does; then more changes, and
    SIGKILL before their group is committed."""
    pid = os.fork()
    if pid == 0:
        try:
            ov = create(directory, repo, bundle)
            ov.db.group_seconds = 3600
            for i in range(writes):
                node = ov.create(ROOT, f"kept{i}".encode(), 0o644)
                ov.write(node.ino, 0, f"content {i}".encode() * 100)
                ov.flush()  # the file's close
            f = ov.lookup(ROOT, b"f")
            ov.write(f.ino, 100_000, b"x" * 100)  # into the data file, extent not committed
            node = ov.create(ROOT, b"lost", 0o644)
            ov.write(node.ino, 0, b"never committed")
            ov.unlink(ROOT, b"kept0")
            ov.mkdir(ROOT, b"lostdir", 0o755)
            os.kill(os.getpid(), signal.SIGKILL)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def test_sigkill_before_a_group_commits_loses_it_whole(base, tmp_path):
    repo, bundle = base
    _killed_after(tmp_path / "ov", repo, bundle, 5)
    assert committed(tmp_path / "ov", "PRAGMA integrity_check") == [("ok",)]
    ov = reopen(tmp_path / "ov", repo)
    try:
        names = sorted(n for n, _ in ov.list_dir(ROOT))
        assert names == [b"f"] + [f"kept{i}".encode() for i in range(5)]
        for i in range(5):
            node = ov.lookup(ROOT, f"kept{i}".encode())
            assert ov.read(node.ino, 0, 10_000) == f"content {i}".encode() * 100
        f = ov.lookup(ROOT, b"f")
        assert ov.read(f.ino, 100_000, 100) == random.Random(2).randbytes(200_000)[100_000:100_100]
        assert os.listdir(ov.data.dir) == []  # the uncommitted write's data file went
        created = ov.create(ROOT, b"after", 0o644)  # and the overlay takes changes again
        ov.write(created.ino, 0, b"ok")
    finally:
        ov.close()


sizes = st.integers(1, 3 * INLINE_MAX // 2)
ops = st.lists(st.one_of(
    st.tuples(st.just("write"), st.integers(0, 2 * INLINE_MAX), sizes),
    st.tuples(st.just("truncate"), st.integers(0, 2 * INLINE_MAX), st.just(0)),
    st.tuples(st.just("punch"), st.integers(0, 2 * INLINE_MAX), sizes),
    st.tuples(st.just("reserve"), st.integers(0, 2 * INLINE_MAX), sizes),
    st.tuples(st.just("reopen"), st.just(0), st.just(0))), max_size=10)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=ops, seed=st.integers(0, 5), new=st.booleans())
def test_small_and_large_writes_read_like_a_plain_file(base, tmp_path_factory, ops, seed, new):
    """Bytes in rows, in the data file or both, across truncates, fallocates and reopening."""
    repo, bundle = base
    directory = tmp_path_factory.mktemp("ov") / "ov"
    ov = create(directory, repo, bundle)
    try:
        if new:
            ino, model = ov.create(ROOT, b"n", 0o644).ino, bytearray()
        else:
            node = ov.lookup(ROOT, b"f")
            ino, model = node.ino, bytearray(Content(repo, repo.trees.chunks(node.origin)).data)
        rng = random.Random(seed)
        for op, a, n in ops:
            if op == "write":
                data = rng.randbytes(n)
                ov.write(ino, a, data)
                model += bytes(max(0, a - len(model)))
                model[a:a + n] = data
            elif op == "truncate":
                ov.setattr(ino, size=a)
                model = model[:a] + bytes(max(0, a - len(model)))
            elif op == "punch":
                ov.fallocate(ino, PUNCH_HOLE | KEEP_SIZE, a, n)
                end = min(a + n, len(model))
                if end > a:
                    model[a:end] = bytes(end - a)
            elif op == "reserve":
                ov.fallocate(ino, KEEP_SIZE, a, n)
            else:
                ov.close()
                ov = reopen(directory, repo)
                ino = ov.lookup(ROOT, b"n" if new else b"f").ino
        assert ov.get(ino).size == len(model)
        assert ov.read(ino, 0, len(model) + 10) == model
        rows = ov.db.all("SELECT start, end, data FROM extents ORDER BY start")
        assert all(a < b and (d is None or len(d) == b - a) for a, b, d in rows)
        assert all(r1[1] < r2[0] for r1, r2 in zip(rows, rows[1:]))  # disjoint, not adjacent
    finally:
        ov.close()
