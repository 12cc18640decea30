"""Overlays outlive daemons across upgrades: one written by schema-1 code
(tests/data/overlay-v1, made by datamonfs at daa7c2c with its make.py) is migrated to
today's schema when opened, shows what it staged, and commits it (tests/unit/
test_overlay_newer_schema.py: an overlay of a newer schema is refused)."""

from __future__ import annotations

import json
import os
import pathlib
import sqlite3
import stat

import pytest
from support.overlays import copy_v1, node_columns
from support.files import snapshot, tree_snapshot
from support.writable import Mounts

from datamonfs.core.repository import Repository
from datamonfs.core.stores import open_store
from datamonfs.fs.overlay import SCHEMA_VERSION


@pytest.fixture
def v1(tmp_path):
    return pathlib.Path(copy_v1(tmp_path))


def test_a_schema_1_overlay_is_migrated_when_opened_and_commits_what_it_staged(v1, tmp_path):
    db_path = v1 / "overlay" / "overlay.db"
    assert "uid" not in node_columns(db_path)
    store = "file://" + str(v1 / "store")
    mounts = Mounts(str(tmp_path), store)
    try:
        h = mounts.start("r", state=str(v1 / "overlay"))
        mp = h.mountpoint
        j = lambda *p: os.path.join(mp, *p)  # noqa: E731
        assert sorted(os.listdir(mp)) == ["a.txt", "big.bin", "link", "made", "moved",
                                          "new.txt"]
        with open(j("new.txt"), "rb") as f:
            assert f.read() == b"written through a v1 overlay\n"
        with open(j("big.bin"), "rb") as f:
            want = bytearray(bytes(range(256)) * 64)
            want[1000:1005] = b"PATCH"
            assert f.read() == want
        st = os.stat(j("a.txt"))
        assert (stat.S_IMODE(st.st_mode), st.st_mtime_ns) == (0o600, 1_650_000_000_000_000_000)
        assert st.st_atime_ns == st.st_mtime_ns  # schema 1 kept no atime: NULL shows the mtime
        assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())  # the mount's owner
        assert sorted(os.listdir(j("moved"))) == ["sub", "x"]
        assert os.readlink(j("made", "up")) == "../a.txt"
        assert os.stat(mp).st_nlink == 4  # moved, made: 2 + subdirectories
        assert {c["path"]: c["change"] for c in h.status()} == {
            "a.txt": "modified", "big.bin": "modified", "dir/": "deleted", "gone.txt": "deleted",
            "made/": "added", "made/up": "added", "moved/": "added", "new.txt": "added"}
        # migrated in place: the new columns, the version, the owner it is shown with
        assert {"uid", "gid", "atime", "xattrs"} <= node_columns(db_path)
        info = h.call("info")["info"]
        assert (info["owner_uid"], info["owner_gid"]) == (os.getuid(), os.getgid())
        # what schema 2 adds works on the migrated overlay
        os.link(j("new.txt"), j("made", "again.txt"))
        os.setxattr(j("new.txt"), "user.from", b"v1")
        expected = snapshot(mp, mtimes=False)
        assert expected["made/again.txt"] == expected["new.txt"]
        result = h.commit("after the migration")
        repo = Repository(open_store(store))
        bundle = repo.get_bundle("r", result["bundle"])
        assert tree_snapshot(repo, bundle.tree) == expected
        assert repo.trees.lookup(bundle.tree, "new.txt").xattrs == (("user.from", b"v1"),)
        assert os.stat(j("new.txt")).st_nlink == 2  # kept across the commit
    finally:
        mounts.cleanup()
    db = sqlite3.connect(db_path)
    try:
        assert json.loads(db.execute("SELECT value FROM meta WHERE key = 'version'")
                          .fetchone()[0]) == SCHEMA_VERSION
    finally:
        db.close()
