"""Never lose data: SIGKILL of the mount process while writing and while committing,
and a full disk under the overlay. Each mount runs in a child process (the harness)
that is killed for real; the overlay is reopened by a fresh one."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import threading
import time

import pytest
from support.files import snapshot, tree_snapshot
from support.writable import ChildDied, small_base

from datamonfs.core.repository import Author

ADA = Author("Ada", "ada@example.org")


@pytest.fixture
def repo(store_url, tmp_path):
    return small_base(store_url, tmp_path)


def test_sigkill_while_writing_keeps_everything_fsynced(repo, mounts):
    h = mounts.start("r")
    mp = h.mountpoint
    synced = {"stream": 0, "files": []}
    block = bytes(range(256)) * 256  # 64 KiB

    def writer():
        try:
            with open(os.path.join(mp, "stream.bin"), "wb") as f:
                n = 0
                while True:
                    f.write(block)
                    n += len(block)
                    if n % (8 * len(block)) == 0:
                        f.flush()
                        os.fsync(f.fileno())
                        synced["stream"] = n
                        name = f"dir/f{n // len(block)}"
                        with open(os.path.join(mp, name), "wb") as g:
                            g.write(name.encode())
                            os.fsync(g.fileno())
                        synced["files"].append(name)
        except OSError:
            return  # the mount died under us

    with open(os.path.join(mp, "doomed"), "wb") as f:
        f.write(b"unlinked while open")
    held = open(os.path.join(mp, "doomed"), "rb")  # unlinked but open when killed
    os.unlink(os.path.join(mp, "doomed"))
    t = threading.Thread(target=writer, daemon=True)
    t.start()
    while synced["stream"] < (4 << 20):
        time.sleep(0.01)
    h.kill()  # SIGKILL with writes in flight
    t.join(10)
    try:
        held.close()
    except OSError as e:
        assert e.errno == errno.ENOTCONN  # its mount is gone

    again = mounts.start("r", state=h.state, mountpoint=mp)
    with open(os.path.join(mp, "stream.bin"), "rb") as f:
        data = f.read()
    assert len(data) >= synced["stream"]
    assert data[:synced["stream"]] == block * (synced["stream"] // len(block))
    for name in synced["files"]:
        with open(os.path.join(mp, name), "rb") as g:
            assert g.read() == name.encode()
    assert not os.path.exists(os.path.join(mp, "doomed"))
    db = sqlite3.connect(os.path.join(h.state, "overlay.db"))
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert db.execute("SELECT count(*) FROM nodes WHERE nlink = 0").fetchone() == (0,)
    db.close()
    staged = {c["path"] for c in again.status()}
    assert "stream.bin" in staged and set(synced["files"]) <= staged
    b = repo.get_bundle("r", again.commit("recovered")["bundle"])
    assert tree_snapshot(repo, b.tree) == snapshot(mp, mtimes=False)


@pytest.mark.parametrize("step", ["before_pending", "before_publish", "before_rebase"])
def test_sigkill_during_commit_leaves_the_bundle_whole_or_absent(repo, mounts, step):
    h = mounts.start("r", env={**os.environ, "DATAMONFS_HARNESS_CRASH": step})
    mp = h.mountpoint
    with open(os.path.join(mp, "new.txt"), "wb") as f:
        f.write(b"new data")
    os.unlink(os.path.join(mp, "dir/old"))
    expected = snapshot(mp, mtimes=False)
    with pytest.raises(ChildDied):
        h.commit("interrupted")
    h.kill()

    again = mounts.start("r", state=h.state, mountpoint=mp)
    assert snapshot(mp, mtimes=False) == expected
    bundles = [i for i in repo.bundle_ids("r") if i != repo.base.id]
    if step == "before_pending":  # nothing was named: the overlay is still all there
        assert again.ready["recovered"] is None and bundles == []
        assert {c["path"] for c in again.status()} == {"new.txt", "dir/old"}
        done = again.commit("again")["bundle"]
    else:  # the commit was recorded: reopening finished it, once
        done = again.ready["recovered"]
        assert bundles == [done] and again.status() == []
    assert repo.resolve("r:main").id == done
    assert tree_snapshot(repo, repo.get_bundle("r", done).tree) == expected
    assert len(repo.bundle_ids("r")) == 2


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs for the overlay, unmounted at the end."""
    path = tmp_path / "small"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(path)],
                   check=True)
    try:
        yield str(path)
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_full_disk_gives_enospc_not_a_corrupt_overlay(repo, mounts, small_disk):
    """With the kernel's writeback cache the error reaches the writer at write, fsync or
    close; what was fsynced before stays, the database still records changes, and space
    freed is usable again."""
    state = os.path.join(small_disk, "overlay")
    h = mounts.start("r", state=state)
    mp = h.mountpoint
    kept = os.urandom(512 << 10)
    with open(os.path.join(mp, "synced.bin"), "wb") as f:
        f.write(kept)
        os.fsync(f.fileno())
    chunk = os.urandom(64 << 10)
    with pytest.raises(OSError) as e:
        with open(os.path.join(mp, "filler"), "wb") as f:
            for _ in range(200):
                f.write(chunk)
                f.flush()
            os.fsync(f.fileno())
    assert e.value.errno == errno.ENOSPC
    with open(os.path.join(mp, "small.txt"), "wb") as f:  # the database still has room
        f.write(b"metadata still works")
        os.fsync(f.fileno())
    os.unlink(os.path.join(mp, "filler"))  # frees the space again
    with open(os.path.join(mp, "after.bin"), "wb") as f:
        f.write(chunk * 8)
        os.fsync(f.fileno())
    h.stop()
    again = mounts.start("r", state=state, mountpoint=mp)
    for name, data in (("synced.bin", kept), ("small.txt", b"metadata still works"),
                       ("after.bin", chunk * 8)):
        with open(os.path.join(mp, name), "rb") as f:
            assert f.read() == data, name
    assert not os.path.exists(os.path.join(mp, "filler"))
    db = sqlite3.connect(os.path.join(state, "overlay.db"))
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()
    expected = snapshot(mp, mtimes=False)
    b = repo.get_bundle("r", again.commit("after a full disk")["bundle"])
    assert tree_snapshot(repo, b.tree) == expected
