"""Mount, unmount, commit and status for people and scripts (issue 18, items 6, 7, 9, 11)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from support.cli import DATAMONFS, on_terminal, one_line_error, with_env
from support.processes import mounts_under
from support.files import write



@pytest.fixture
def repo(cli, tmp_path):
    folder = tmp_path / "data"
    write(folder, "a.txt", b"a\n")
    cli("repo", "create", "r")
    return cli("bundle", "upload", "r", str(folder), "-m", "x", "--label", "v1").last_line


def test_json_of_mount_status_commit_and_unmount(cli, daemon, repo):
    mp = daemon.mountpoint()
    m = json.loads(cli("mount", "--rw", "r", mp, "--json").out)
    assert (m["mountpoint"], m["mode"], m["bundle"], m["already"]) == (mp, "rw", repo, False)
    assert m["store"]["url"] == cli.store_url
    write(mp, "new.txt", b"new")
    s = json.loads(cli("status", mp, "--json").out)
    assert [(c["path"], c["change"], c["size"]) for c in s["changes"]] == [("new.txt", "added", 3)]
    assert (s["counts"], s["total"], s["truncated"]) == (
        {"added": 1, "modified": 0, "deleted": 0}, 1, False)
    c = json.loads(cli("commit", mp, "-m", "json", "--json").out)
    assert c["parent"] == repo and c["bundle"] and c["stats"]["chunks_uploaded"] == 1
    assert json.loads(cli("bundle", "get", "r", "--json").out)["id"] == c["bundle"]
    u = json.loads(cli("unmount", mp, "--json").out)
    assert u == {"mountpoint": mp, "commit": u["commit"], "discarded": False}
    assert u["commit"]["bundle"] is None  # nothing staged since


def test_busy_mount_is_refused_before_committing_and_lazy_detaches(cli, daemon, repo):
    mp = daemon.mountpoint()
    cli("mount", "--rw", "r", mp)
    write(mp, "staged.txt", b"staged")
    held = open(os.path.join(mp, "a.txt"), "rb")
    try:
        r = cli("unmount", mp, expect=1)
        one_line_error(r, "is busy", f"pid {os.getpid()}", "--lazy")
        # nothing was committed: the branch still names the first bundle
        assert json.loads(cli("bundle", "get", "r", "--json").out)["id"] == repo
        assert json.loads(cli("status", mp, "--json").out)["total"] == 1
        r = cli("unmount", mp, "--lazy")
        assert "committed bundle" in r.err and "lazily" in r.err
        assert r.last_line == json.loads(cli("bundle", "get", "r", "--json").out)["id"]
        assert mounts_under(mp) == []
    finally:
        try:
            held.close()
        except OSError:  # ENOTCONN: its worker stopped after the lazy unmount
            pass
    ro = daemon.mountpoint()
    cli("mount", "r:v1", ro)
    proc = subprocess.Popen(["sleep", "60"], cwd=ro)
    try:
        one_line_error(cli("unmount", ro, expect=1), "is busy", f"pid {proc.pid} (sleep)")
    finally:
        proc.kill()
        proc.wait()
    cli("unmount", ro)


def test_mounting_a_label_writable_says_how_to_branch_from_it(cli, daemon, repo):
    r = cli("mount", "--rw", "r:v1", daemon.mountpoint(), expect=1)
    one_line_error(r, "r:v1 is a label, not a branch", "datamonfs branch create r:v1")
    r = cli("mount", "--rw", "--new", "r", daemon.mountpoint(), "--branch", "v1", expect=1)
    one_line_error(r, "has a label named 'v1'")
    mp = daemon.mountpoint()
    cli("mount", "--rw", "r", mp)
    write(mp, "b.txt", b"b")
    one_line_error(cli("commit", mp, "-m", "x", "--label", "main", expect=1),
                   "has a branch named 'main'")
    cli("unmount", mp, "--discard")


@pytest.mark.parametrize("store_url", ["local"], indirect=True)
def test_commit_shows_progress_fed_by_the_daemon(cli, daemon, repo):
    mp = daemon.mountpoint()
    cli("mount", "--rw", "r", mp)
    write(mp, "big.bin", os.urandom(12 << 20))
    code, shown = on_terminal([DATAMONFS, "commit", mp, "-m", "big"], cli.env)
    assert code == 0, shown
    assert b"committing" in shown and b"100%" in shown and b"12.0M" in shown, shown
    write(mp, "big2.bin", os.urandom(6 << 20))
    lines = with_env(cli, DATAMONFS_PROGRESS_INTERVAL="0")("commit", mp, "-m", "x").err
    assert "committing: " in lines and "MiB" in lines, lines  # no terminal: plain lines
    write(mp, "big3.bin", os.urandom(6 << 20))
    lines = with_env(cli, DATAMONFS_PROGRESS_INTERVAL="0")("unmount", mp).err
    assert "committing: " in lines and "committed bundle" in lines, lines


def test_daemon_stop_says_what_it_unmounted_and_is_idempotent(cli, daemon, repo):
    ro, rw = daemon.mountpoint(), daemon.mountpoint()
    cli("mount", "r:v1", ro)
    cli("mount", "--rw", "r", rw)
    assert json.loads(cli("daemon", "status", "--json").out)["running"] is True
    r = cli("daemon", "stop")
    assert f"unmounted {ro}\n" in r.err and f"unmounted {rw} (staged changes kept)" in r.err
    assert "nothing to stop" in cli("daemon", "stop").err
    cli("unmount", rw, "--discard")
