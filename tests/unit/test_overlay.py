"""The overlay without FUSE: staged ranges against a model, listings merged with a
paged base tree, and memory put back when a transaction fails."""

from __future__ import annotations

import errno
import os
import random
import sqlite3

import pytest
from support.overlays import Content, one_file_base, overlay_in
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datamonfs.core import ingest, trees
from datamonfs.core.repository import Author, Repository
from datamonfs.core.stores import open_store
from datamonfs.fs.overlay import Overlay
from datamonfs.fs.overlay.db import OverlayDB
from datamonfs.fs.overlay.schema import DirentRow, ExtentRow, MetaRow, NodeRow
from datamonfs.fs.vfs import ROOT, FsError

ADA = Author("Ada", "ada@example.org")


def overlay_on(tmp_path, name, repo, bundle=None) -> Overlay:
    return overlay_in(tmp_path / name, repo, bundle)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return one_file_base(tmp_path_factory.mktemp("base"), 600_000)


ops = st.lists(st.one_of(
    st.tuples(st.just("write"), st.integers(0, 800_000), st.integers(1, 70_000)),
    st.tuples(st.just("truncate"), st.integers(0, 800_000), st.just(0))), max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=ops, seed=st.integers(0, 5))
def test_staged_ranges_read_like_a_plain_file(base, tmp_path_factory, ops, seed):
    repo, bundle = base
    ov = overlay_on(tmp_path_factory.mktemp("ov"), "ov", repo, bundle)
    try:
        node = ov.lookup(ROOT, b"f")
        model = bytearray(Content(repo, repo.trees.chunks(node.origin)).data)
        rng = random.Random(seed)
        for op, a, n in ops:
            if op == "write":
                data = rng.randbytes(n)
                ov.write(node.ino, a, data)
                model += bytes(max(0, a - len(model)))
                model[a:a + n] = data
            else:
                ov.setattr(node.ino, size=a)
                model = model[:a] + bytes(max(0, a - len(model)))
        assert ov.get(node.ino).size == len(model)
        assert ov.read(node.ino, 0, len(model) + 10) == model
        for _ in range(5):
            a = rng.randrange(len(model) + 1)
            assert ov.read(node.ino, a, 30_000) == model[a:a + 30_000]
        rows = ov.db.all("SELECT start, end FROM extents ORDER BY start")
        assert all(a < b for a, b in rows)
        assert all(b1 < a2 for (_, b1), (a2, _) in zip(rows, rows[1:]))  # disjoint, not adjacent
    finally:
        ov.close()


def test_listing_merges_a_paged_base_with_staged_names(tmp_path, monkeypatch):
    monkeypatch.setattr(trees, "PAGE_SIZE", 4)
    repo = Repository(open_store(str(tmp_path / "store")))
    repo.create_repo("r", "", ADA)
    for i in range(0, 30, 2):
        (tmp_path / "src").mkdir(exist_ok=True)
        (tmp_path / "src" / f"n{i:02}").write_bytes(b"x")
    bundle, _ = ingest.upload(repo, "r", str(tmp_path / "src"), "base", ADA)
    ov = overlay_on(tmp_path, "ov", repo, bundle)
    try:
        for i in range(1, 30, 4):
            ov.create(ROOT, f"n{i:02}".encode(), 0o644)
        for i in range(0, 30, 6):
            ov.unlink(ROOT, f"n{i:02}".encode())
        ov.rename(ROOT, b"n02", ROOT, b"n99")
        want = sorted({f"n{i:02}" for i in range(0, 30, 2)} - {f"n{i:02}" for i in range(0, 30, 6)}
                      - {"n02"} | {f"n{i:02}" for i in range(1, 30, 4)} | {"n99"})
        got, after = [], None
        while True:  # resumed after the last name, as readdir does
            batch = ov.list_dir(ROOT, after, 3)
            got += [n.decode() for n, _ in batch]
            if len(batch) < 3:
                break
            after = batch[-1][0]
        assert got == want
        inos = {name: node.ino for name, node in ov.list_dir(ROOT, None, 100)}
        assert inos[b"n04"] == ov.lookup(ROOT, b"n04").ino  # one inode per name
    finally:
        ov.close()


def test_a_failed_transaction_leaves_memory_as_the_database(base, tmp_path, monkeypatch):
    repo, bundle = base
    ov = overlay_on(tmp_path, "ov", repo, bundle)
    try:
        node = ov.lookup(ROOT, b"f")
        before = (node.persisted, node.mode, node.size)

        def full(db, dirty):
            raise sqlite3.OperationalError("database or disk is full")
        monkeypatch.setattr(ov.db, "write_dirty", full)
        with pytest.raises(FsError) as e:
            ov.setattr(node.ino, mode=0o600, size=10)
        assert e.value.errno == errno.ENOSPC
        assert (node.persisted, node.mode, node.size) == before
        with pytest.raises(FsError):
            ov.create(ROOT, b"new", 0o644)
        monkeypatch.undo()
        with pytest.raises(FsError) as e:
            ov.lookup(ROOT, b"new")
        assert e.value.errno == errno.ENOENT
        ov.setattr(node.ino, mode=0o600)
        assert ov.db.one("SELECT mode FROM nodes WHERE ino = ?", (node.ino,)) == (0o600,)
    finally:
        ov.close()


def test_reopening_drops_files_a_crash_left_unlinked(base, tmp_path):
    repo, bundle = base
    ov = overlay_on(tmp_path, "ov", repo, bundle)
    node = ov.create(ROOT, b"tmp", 0o644)
    ov.open(node.ino)
    ov.write(node.ino, 0, b"still open")
    ov.unlink(ROOT, b"tmp")
    assert ov.read(node.ino, 0, 100) == b"still open"
    ov.close()  # as if killed: never released
    again = Overlay(str(tmp_path / "ov"), repo.trees, lambda c: Content(repo, c))
    try:
        assert again.db.all("SELECT ino FROM nodes WHERE nlink = 0") == []
        assert os.listdir(again.data.dir) == []
    finally:
        again.close()


def test_each_table_has_the_columns_its_row_type_names(tmp_path):
    db = OverlayDB(str(tmp_path / "overlay.db"))
    try:
        for table, row in (("meta", MetaRow), ("nodes", NodeRow), ("dirents", DirentRow),
                           ("extents", ExtentRow)):
            assert {r[1] for r in db.all(f"PRAGMA table_info({table})")} == set(row._fields)
    finally:
        db.close()


def test_bytes_granted_to_a_write_count_as_used_until_written(base, tmp_path):
    """A write checks free space under the overlay's lock and writes after it: bytes
    granted and not yet written count as used, so writes at once cannot both be granted
    the database's reserve (the full-disk test failed now and then without it)."""
    repo, bundle = base
    ov = overlay_on(tmp_path, "ov", repo, bundle)
    try:
        st = os.statvfs(ov.data.dir)
        free = st.f_bavail * st.f_frsize
        ov.data.check_space(1 << 20)
        ov.data.writing(free)  # one write granted all of it, its bytes not yet on disk
        with pytest.raises(FsError) as e:
            ov.data.check_space(1, in_rows=True)
        assert e.value.errno == errno.ENOSPC
        ov.data.written(free)
        ov.data.check_space(1 << 20)
    finally:
        ov.close()
