"""Group commits through a real mount: SIGKILL after a change was answered but before its
group was committed loses nothing that was fsynced or closed, and loses the rest whole
(a change is all there or not at all, the overlay opens and commits)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time

import pytest
from support.files import snapshot, tree_snapshot
from support.writable import small_base

from datamonfs.core.repository import Author

ADA = Author("Ada", "ada@example.org")


@pytest.fixture
def repo(store_url, tmp_path):
    return small_base(store_url, tmp_path)


def integrity(state: str) -> None:
    db = sqlite3.connect(os.path.join(state, "overlay.db"))
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        db.close()


def test_sigkill_before_the_group_commit_keeps_what_was_fsynced_or_closed(repo, mounts):
    h = mounts.start("r", env={**os.environ, "DATAMONFS_HARNESS_GROUP_SECONDS": "3600"})
    mp = h.mountpoint
    j = lambda *p: os.path.join(mp, *p)  # noqa: E731
    big = os.urandom(300 << 10)  # past the bytes kept in rows: a data file
    with open(j("synced.bin"), "wb") as f:
        f.write(big)
        f.flush()
        os.fsync(f.fileno())
    with open(j("dir", "closed.txt"), "wb") as f:  # closed, not fsynced
        f.write(b"closed before the kill")
    # answered, but their group is never committed before the kill
    os.mkdir(j("lostdir"))
    os.rename(j("a.txt"), j("renamed.txt"))
    os.unlink(j("dir", "old"))
    h.kill()

    again = mounts.start("r", state=h.state, mountpoint=mp)
    integrity(h.state)
    with open(j("synced.bin"), "rb") as f:
        assert f.read() == big
    with open(j("dir", "closed.txt"), "rb") as f:
        assert f.read() == b"closed before the kill"
    assert not os.path.exists(j("lostdir"))
    assert os.path.exists(j("a.txt")) != os.path.exists(j("renamed.txt"))  # never both or none
    with open(j("a.txt") if os.path.exists(j("a.txt")) else j("renamed.txt"), "rb") as f:
        assert f.read() == b"hello\n"
    with open(j("dir", "old"), "rb") as f:
        assert f.read() == b"old"
    expected = snapshot(mp, mtimes=False)
    b = repo.get_bundle("r", again.commit("after the kill")["bundle"])
    assert tree_snapshot(repo, b.tree) == expected


def test_sigkill_in_a_stream_of_small_files_leaves_each_whole_or_absent(repo, mounts):
    h = mounts.start("r")
    mp = h.mountpoint
    done = {"closed": 0, "fsynced": []}

    def body(i: int) -> bytes:
        return f"file {i}\n".encode() * (1 + i % 50)

    def writer():
        try:
            for i in range(100_000):
                with open(os.path.join(mp, "dir", f"f{i:05}"), "wb") as f:
                    f.write(body(i))
                    if i % 10 == 0:
                        f.flush()
                        os.fsync(f.fileno())
                        done["fsynced"].append(i)
                done["closed"] = i + 1
        except OSError:
            return  # the mount died under us

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    while done["closed"] < 300:
        time.sleep(0.01)
    h.kill()  # files in flight, a group open
    t.join(10)
    closed = done["closed"]

    again = mounts.start("r", state=h.state, mountpoint=mp)
    integrity(h.state)
    names = sorted(n for n in os.listdir(os.path.join(mp, "dir")) if n.startswith("f"))
    for i in range(closed):  # closed (some also fsynced) before the kill: all there
        assert f"f{i:05}" in names
    for name in names:
        with open(os.path.join(mp, "dir", name), "rb") as f:
            data = f.read()
        i = int(name[1:])
        # later ones: there whole, or created and not yet written, never torn
        assert data == body(i) or (i >= closed and data == b""), name
    expected = snapshot(mp, mtimes=False)
    b = repo.get_bundle("r", again.commit("after the kill")["bundle"])
    assert tree_snapshot(repo, b.tree) == expected
