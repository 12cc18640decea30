"""Writable mounts through the real CLI and daemon, on both stores: mount --rw, status,
commit, unmount (committing or discarding), forks, and recovery after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import threading

from support.processes import alive, mounts_under, wait_for


def make_repo(cli, tmp_path) -> str:
    src = tmp_path / "src"
    (src / "dir").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"hello\n")
    (src / "dir" / "old.txt").write_bytes(b"old\n")
    (src / "big.bin").write_bytes(os.urandom(3_000_000))
    cli("repo", "create", "r")
    return cli("bundle", "upload", "r", str(src), "-m", "base").last_line


def record(daemon, mp: str) -> dict | None:
    return next((m for m in daemon.mounts() if m["mountpoint"] == mp), None)


def test_mount_rw_status_commit_diff_unmount(cli, daemon, tmp_path):
    base = make_repo(cli, tmp_path)
    mp = daemon.mountpoint()
    assert cli("mount", "--rw", "r:main", mp).last_line == base
    with open(os.path.join(mp, "a.txt"), "ab") as f:
        f.write(b"more\n")
    os.unlink(os.path.join(mp, "dir/old.txt"))
    os.mkdir(os.path.join(mp, "new"))
    with open(os.path.join(mp, "new/n.txt"), "wb") as f:
        f.write(b"new\n")
    staged = json.loads(cli("status", mp, "--json").out)["changes"]
    assert [(c["path"], c["change"]) for c in staged] == [
        ("a.txt", "modified"), ("dir/old.txt", "deleted"), ("new/", "added"),
        ("new/n.txt", "added")]
    assert "2 added, 1 modified, 1 deleted" in cli("status", mp).err
    r = cli("commit", mp, "-m", "edits", "--label", "v2")
    bundle = r.last_line
    assert "committed bundle" in r.err and "note:" not in r.err
    got = json.loads(cli("bundle", "get", "r:v2", "--json").out)
    assert got["id"] == bundle and got["parents"] == [base] and got["message"] == "edits"
    diff = json.loads(cli("bundle", "diff", f"r:{base}", "r:v2", "--json").out)
    assert [(d["path"], d["change"]) for d in diff] == [
        ("a.txt", "modified"), ("dir/old.txt", "deleted"), ("new/n.txt", "added")]
    assert json.loads(cli("status", mp, "--json").out)["changes"] == []
    assert record(daemon, mp)["bundle"] == bundle and record(daemon, mp)["mode"] == "rw"
    # nothing staged: nothing committed, the same bundle printed
    r = cli("commit", mp, "-m", "nothing")
    assert r.last_line == bundle and "nothing to commit" in r.err
    # unmount commits what is still staged
    with open(os.path.join(mp, "late.txt"), "wb") as f:
        f.write(b"late\n")
    r = cli("unmount", mp)
    last = r.last_line
    assert "committed bundle" in r.err and last != bundle
    assert json.loads(cli("bundle", "get", "r:main", "--json").out)["id"] == last
    assert record(daemon, mp) is None and mounts_under(mp) == []
    files = json.loads(cli("bundle", "files", "r:main", "--json").out)
    assert "late.txt" in [f["path"] for f in files]


def test_new_branch_discard_and_refusals(cli, daemon, tmp_path):
    make_repo(cli, tmp_path)
    mp = daemon.mountpoint()
    r = cli("mount", "--rw", "--new", "r", mp, "--branch", "main", expect=1)
    assert "exists already" in r.err
    r = cli("mount", "--rw", "r:nope", mp, expect=1)
    assert "no branch 'nope'" in r.err and "--new" in r.err
    cli("mount", "--new", "r", mp, expect=2)  # --new without --rw: usage
    cli("mount", "--rw", "--new", "r", mp, "--branch", "scratch")
    assert os.listdir(mp) == []
    with open(os.path.join(mp, "x"), "wb") as f:
        f.write(b"x")
    cli("unmount", "--discard", mp)
    assert mounts_under(mp) == [] and record(daemon, mp) is None
    assert [b["name"] for b in json.loads(cli("branch", "list", "r", "--json").out)] == ["main"]
    # commit_on_unmount = false: unmount refuses while something is staged
    cfg = os.path.join(cli.env["XDG_CONFIG_HOME"], "datamonfs", "config.toml")
    with open(cfg, "a") as f:
        f.write("commit_on_unmount = false\n")
    cli("mount", "--rw", "--new", "r", mp, "--branch", "scratch")
    with open(os.path.join(mp, "y"), "wb") as f:
        f.write(b"y")
    r = cli("unmount", mp, expect=1)
    assert "staged change" in r.err and "--discard" in r.err
    bundle = cli("commit", mp, "-m", "first on scratch").last_line
    cli("unmount", mp)
    got = json.loads(cli("bundle", "get", "r:scratch", "--json").out)
    assert got["id"] == bundle and got["parents"] == []


def test_two_writable_mounts_of_one_branch_fork_it(cli, daemon, tmp_path):
    base = make_repo(cli, tmp_path)
    one, two = daemon.mountpoint(), daemon.mountpoint()
    cli("mount", "--rw", "r:main", one)
    cli("mount", "--rw", "r", two)  # REPO alone: branch main
    for mp, name in ((one, "one"), (two, "two")):
        with open(os.path.join(mp, name), "wb") as f:
            f.write(name.encode())
    first = cli("commit", one, "-m", "one")
    second = cli("commit", two, "-m", "two")
    assert "note:" not in first.err
    note = [line for line in second.err.splitlines() if line.startswith("note:")]
    assert len(note) == 1 and "moved" in note[0] and "branch log" in note[0]
    log = cli("branch", "log", "r:main").out.split()
    assert log.index(second.last_line) < log.index(first.last_line) < log.index(base)
    for b in (first.last_line, second.last_line):
        assert json.loads(cli("bundle", "get", f"r:{b}", "--json").out)["parents"] == [base]
    cli("unmount", one)
    cli("unmount", two)


def test_sigkill_of_the_daemon_keeps_what_was_fsynced(cli, daemon, tmp_path):
    make_repo(cli, tmp_path)
    mp = daemon.mountpoint()
    cli("mount", "--rw", "r:main", mp)
    synced = {"n": 0}
    block = os.urandom(64 << 10)

    def writer():
        try:
            with open(os.path.join(mp, "stream.bin"), "wb") as f:
                while True:
                    f.write(block)
                    if f.tell() % (4 * len(block)) == 0:
                        f.flush()
                        os.fsync(f.fileno())
                        synced["n"] = f.tell()
        except OSError:
            return

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    wait_for(lambda: synced["n"] >= (2 << 20), what="fsynced writes")
    workers = [m["worker_pid"] for m in daemon.mounts()]
    os.kill(daemon.pid(), signal.SIGKILL)  # with writes in flight
    for w in workers:
        wait_for(lambda w=w: not alive(w), what=f"worker {w} to exit")
    t.join(10)
    offline = json.loads(cli("mounts", "--json").out)
    assert [(r["mountpoint"], r["mode"], r["state"]) for r in offline] == [(mp, "rw", "stale")]
    daemon.start()
    kept = record(daemon, mp)
    assert kept["state"] == "stale" and "staged changes kept" in kept["reason"]
    r = cli("commit", mp, "-m", "recovered")  # mounts it again, then commits
    assert record(daemon, mp)["state"] == "mounted"
    with open(os.path.join(mp, "stream.bin"), "rb") as f:
        data = f.read()
    n = synced["n"]
    assert len(data) >= n and data[:n] == block * (n // len(block))
    files = {f["path"]: f for f in json.loads(cli("bundle", "files", f"r:{r.last_line}",
                                                  "--json").out)}
    assert files["stream.bin"]["size"] == len(data)
    cli("unmount", mp)


def test_dead_writable_mount_can_be_resumed_or_discarded(cli, daemon, tmp_path):
    make_repo(cli, tmp_path)
    mp = daemon.mountpoint()
    cli("mount", "--rw", "r:main", mp)
    with open(os.path.join(mp, "keep.txt"), "wb") as f:
        f.write(b"keep me")
        os.fsync(f.fileno())
    os.kill(record(daemon, mp)["worker_pid"], signal.SIGKILL)
    wait_for(lambda: record(daemon, mp)["state"] == "stale", what="stale mount")
    r = cli("mount", "--rw", "r:other", mp, expect=1)
    assert "staged changes for r:main" in r.err
    cli("mount", "--rw", "r:main", mp)  # resumes the overlay
    with open(os.path.join(mp, "keep.txt"), "rb") as f:
        assert f.read() == b"keep me"
    assert [c["path"] for c in json.loads(cli("status", mp, "--json").out)["changes"]] == ["keep.txt"]
    # stopping the daemon keeps the overlay; --discard without a daemon drops it
    cli("daemon", "stop")
    assert [r["state"] for r in json.loads(cli("mounts", "--json").out)] == ["stale"]
    cli("unmount", "--discard", mp)
    assert json.loads(cli("mounts", "--json").out) == []
    daemon.start()
    assert daemon.mounts() == []  # nothing left to adopt
