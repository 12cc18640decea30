"""The daemon as a process: control socket, crashes, signals, races, permissions.

The store does not matter to most of these, so they run on the local store only,
except the crash tests, which mount real bundles on both stores.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from support.cli import DATAMONFS
from support.processes import alive, mounts_under, wait_for

local_only = pytest.mark.parametrize("store_url", ["local"], indirect=True)


def upload_small(cli, tmp_path, repo: str = "data", label: str = "v1") -> dict[str, bytes]:
    src = tmp_path / f"src-{repo}-{label}"
    files = {"a.txt": b"alpha\n", "d/b.bin": os.urandom(200_000)}
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    cli("repo", "create", repo, expect=None)
    cli("bundle", "upload", repo, str(src), "-m", "m", "--label", label)
    return files


def read_all(mp: str, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        with open(os.path.join(mp, rel), "rb") as f:
            assert f.read() == data, rel


def mount_state(daemon, mp: str) -> str | None:
    return next((m["state"] for m in daemon.mounts() if m["mountpoint"] == mp), None)


# -- the control socket ----------------------------------------------------------------------


@local_only
def test_bad_requests_get_error_replies_and_the_daemon_carries_on(cli, daemon):
    cases = [
        (b"this is not json\n", "bad_request"),
        (b"[1, 2, 3]\n", "bad_request"),
        (b'{"id": 1}\n', "unknown_op"),
        (b'{"id": 2, "op": "launch-missiles"}\n', "unknown_op"),
        (b'{"id": 3, "op": 42}\n', "unknown_op"),
        (b'{"id": 4, "op": "mount"}\n', "bad_request"),
        (b'{"id": 5, "op": "mount", "ref": "data:v1", "mountpoint": "relative/path"}\n',
         "bad_request"),
        (b'{"id": 6, "op": "unmount", "mountpoint": ["x"]}\n', "bad_request"),
        (b"\xff\xfe\x00garbage\n", "bad_request"),
        (b"[" * 100_000 + b"\n", "too_large"),
        (b"[" * 30_000 + b"]" * 30_000 + b"\n", "bad_request"),  # deep nesting, under the cap
        (b'{"id": 7, "op": "unmount", "mountpoint": "/nowhere"}\n', "not_found"),
    ]
    for payload, code in cases:
        replies = daemon.request(payload)
        assert len(replies) == 1, payload[:40]
        assert replies[0]["ok"] is False and replies[0]["error"]["code"] == code, (payload[:40], replies)
        assert replies[0]["error"]["message"]
    # Ids come back; several requests on one connection, an oversized one among them.
    replies = daemon.request(b'{"id": "a", "op": "list"}\n' + b"x" * 70_000 + b'\n'
                             b'{"id": 9, "op": "status"}\n')
    assert [(r["id"], r["ok"]) for r in replies] == [("a", True), (None, False), (9, True)]
    assert replies[0]["mounts"] == [] and replies[2]["pid"] == daemon.pid()
    # A client that hangs up mid-line does not disturb the daemon.
    import socket as socketlib

    with socketlib.socket(socketlib.AF_UNIX) as s:
        s.connect(daemon.socket)
        s.sendall(b'{"id": 1, "op": "sta')
    assert daemon.status()["mounts"] == 0


@local_only
def test_socket_is_private_and_foreign_peers_are_refused(cli, daemon):
    mode = stat.S_IMODE(os.stat(daemon.socket).st_mode)
    assert mode == 0o600
    # Widen the file permissions by mistake: the uid check still turns strangers away.
    os.chmod(daemon.socket, 0o666)
    os.chmod(daemon.sockdir, 0o711)
    client = ("import socket, sys\n"
              "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
              "try:\n"
              "    s.sendall(b'{\"id\": 1, \"op\": \"list\"}\\n')\n"
              "except BrokenPipeError:\n"
              "    pass  # refused at once, maybe before the request went out\n"
              "print(s.makefile().readline())\n")
    out = subprocess.run(["/usr/bin/python3", "-c", client, daemon.socket], user=65534,
                         group=65534, capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    out = out.stdout
    reply = json.loads(out)
    assert reply["ok"] is False and reply["error"]["code"] == "forbidden"
    assert daemon.status()["mounts"] == 0


def _as_nobody(socket_path: str, *requests: dict) -> list[dict]:
    """Requests sent by uid/gid 65534 (nobody/nogroup), as raw protocol lines."""
    lines = b"".join(json.dumps(r).encode() + b"\n" for r in requests)
    client = ("import socket, sys\n"
              "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
              "s.sendall(sys.stdin.buffer.read())\n"
              f"f = s.makefile()\nfor _ in range({len(requests)}): print(f.readline(), end='')\n")
    out = subprocess.run(["/usr/bin/python3", "-c", client, socket_path], input=lines.decode(),
                         user=65534, group=65534, extra_groups=[], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


@local_only
def test_group_members_mount_as_themselves(cli, daemon, tmp_path):
    files = upload_small(cli, tmp_path)
    cli("daemon", "stop")
    cli("daemon", "start", "--group", "nogroup")
    st = os.stat(daemon.socket)
    assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == 65534
    os.chmod(daemon.sockdir, 0o711)
    theirs, not_theirs = daemon.mountpoint(), daemon.mountpoint()
    os.chown(theirs, 65534, 65534)
    replies = _as_nobody(daemon.socket,
                         {"id": 1, "op": "mount", "ref": "data:v1", "mountpoint": not_theirs,
                          "store": {"url": cli.store_url}},
                         {"id": 2, "op": "mount", "ref": "data:v1", "mountpoint": theirs,
                          "store": {"url": cli.store_url}},
                         {"id": 3, "op": "shutdown"})
    assert [r["ok"] for r in replies] == [False, True, False]
    assert replies[0]["error"]["code"] == "forbidden" and replies[2]["error"]["code"] == "forbidden"
    daemon.mounts()
    st = os.stat(os.path.join(theirs, "a.txt"))
    assert (st.st_uid, st.st_gid) == (65534, 65534)  # the files are the requester's
    read_all(theirs, files)
    [reply] = _as_nobody(daemon.socket, {"id": 4, "op": "unmount", "mountpoint": theirs})
    assert reply["ok"], reply
    assert mounts_under(daemon.root) == []


@local_only
def test_unreachable_daemon_exits_3(cli, daemon):
    cli("daemon", "stop")
    r = cli("daemon", "status", expect=3)
    assert "no datamonfs daemon is running" in r.err
    assert "nothing to stop" in cli("daemon", "stop").err  # idempotent
    r = cli("unmount", "/nowhere", expect=3)
    assert "no datamonfs mount at /nowhere" in r.err
    assert cli("mounts", "--json").out.strip() == "[]"  # nothing recorded: nothing to show


@local_only
def test_default_socket_is_in_xdg_runtime_dir_and_socket_option_names_another(cli, daemon):
    cli("daemon", "stop")
    del cli.env["DATAMONFS_SOCKET"]
    sock = os.path.join(cli.env["XDG_RUNTIME_DIR"], "datamonfs", "daemon.sock")
    cli("daemon", "start")
    try:
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(sock)).st_mode) == 0o700
        status = json.loads(cli("daemon", "status", "--json").out)
        daemon.pids.add(status["pid"])
        assert status["socket"] == sock
        r = cli("daemon", "status", "--socket", daemon.socket, expect=3)
        assert daemon.socket in r.err
    finally:
        cli("daemon", "stop", "--socket", sock)
    assert not os.path.exists(sock)


@local_only
def test_two_daemons_started_at_once_one_wins(cli, daemon):
    cli("daemon", "stop")
    procs = [subprocess.Popen([DATAMONFS, "daemon", "start"], env=cli.env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    results = [(p.wait(60), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1, 1], results
    assert all("already running" in err for code, err in results if code == 1)
    pid = daemon.pid()
    assert daemon.status()["pid"] == pid
    r = cli("daemon", "start", "--foreground", expect=1)
    assert f"already running (pid {pid})" in r.err


# -- crashes, signals ------------------------------------------------------------------------


def test_killed_worker_marks_its_mount_stale_others_carry_on(cli, daemon, tmp_path):
    files = upload_small(cli, tmp_path)
    mp1, mp2 = daemon.mount("data:v1"), daemon.mount("data:v1")
    read_all(mp1, files)
    worker = next(m["worker_pid"] for m in daemon.mounts() if m["mountpoint"] == mp1)
    os.kill(worker, signal.SIGKILL)
    wait_for(lambda: mount_state(daemon, mp1) == "stale", what="stale mount")
    stale = next(m for m in daemon.mounts() if m["mountpoint"] == mp1)
    assert "SIGKILL" in stale["reason"]
    assert "stale" in cli("mounts").out
    read_all(mp2, files)  # the other mount is unharmed
    r = cli("mount", "data:v1", mp1, expect=1)
    assert "stale" in r.err and "datamonfs unmount" in r.err
    cli("unmount", mp1)
    assert mounts_under(mp1) == []
    daemon.mount("data:v1", mp1)  # the mountpoint is usable again
    read_all(mp1, files)
    assert {m["state"] for m in daemon.mounts()} == {"mounted"}


def test_killed_daemon_leaves_stale_mounts_that_unmount_clears(cli, daemon, tmp_path):
    files = upload_small(cli, tmp_path)
    mp1, mp2 = daemon.mount("data:v1"), daemon.mount("data:v1")
    workers = [m["worker_pid"] for m in daemon.mounts()]
    os.kill(daemon.pid(), signal.SIGKILL)
    # Workers notice their supervisor is gone and stop serving, leaving dead mounts.
    for w in workers:
        wait_for(lambda w=w: not alive(w), what=f"worker {w} to exit")
    with pytest.raises(OSError):
        os.listdir(mp1)
    records = json.loads(cli("mounts", "--json").out)
    assert sorted((r["mountpoint"], r["state"]) for r in records) == [(mp1, "stale"), (mp2, "stale")]
    cli("unmount", mp1)  # no daemon: cleared from the registry and the mount table
    assert mounts_under(mp1) == [] and os.listdir(mp1) == []
    cli("daemon", "status", expect=3)
    # A new daemon adopts what is left as stale; unmount through it clears it.
    daemon.start()
    assert [(m["mountpoint"], m["state"]) for m in daemon.mounts()] == [(mp2, "stale")]
    cli("unmount", mp2)
    assert mounts_under(daemon.root) == []
    # Mounting again works; mount starts a daemon on demand when none runs.
    cli("daemon", "stop")
    r = cli("mount", "data:v1", mp1)
    assert "started the datamonfs daemon" in r.err
    read_all(mp1, files)


@local_only
def test_sigterm_unmounts_everything_then_exits(cli, daemon, tmp_path):
    files = upload_small(cli, tmp_path)
    mps = [daemon.mount("data:v1") for _ in range(2)]
    read_all(mps[0], files)
    pid = daemon.pid()
    workers = [m["worker_pid"] for m in daemon.mounts()]
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not alive(pid), what="daemon exit")
    assert all(not alive(w) for w in workers)
    assert mounts_under(daemon.root) == []
    assert cli("mounts", "--json").out.strip() == "[]"
    assert not os.path.exists(daemon.socket)


@local_only
def test_foreground_daemon_logs_and_stops_on_sigint(cli, daemon, tmp_path):
    cli("daemon", "stop")
    proc = subprocess.Popen([DATAMONFS, "daemon", "start", "--foreground"], env=cli.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: os.path.exists(daemon.socket), what="socket")
        files = upload_small(cli, tmp_path)
        mp = daemon.mount("data:v1")
        read_all(mp, files)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        err = proc.stderr.read()
        assert "serving" in err and "unmounted " + mp in err
        assert mounts_under(daemon.root) == []
        logs = glob.glob(os.path.join(cli.env["XDG_STATE_HOME"], "datamonfs", "daemon", "*",
                                      "daemon.log"))
        assert len(logs) == 1
        with open(logs[0]) as f:
            assert "unmounted " + mp in f.read()  # the log file has the same lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


# -- scale -----------------------------------------------------------------------------------


@local_only
def test_many_files_need_no_per_file_state(cli, daemon):
    script = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "make_million_bundle.py")
    subprocess.run([sys.executable, script, "many", "--files", "20000", "--per-dir", "2000",
                    "--label", "m"], env=cli.env, check=True, capture_output=True, timeout=120)
    mp = daemon.mount("many:m")
    assert len(os.listdir(mp)) == 10
    count = 0
    for entry in os.scandir(mp):
        for f in os.scandir(entry.path):
            count += 1
            assert f.stat().st_size > 0
    assert count == 20000
    with open(os.path.join(mp, "d3", "f0001999.txt"), "rb") as f:
        assert f.read().startswith(b"datamonfs shared chunk")
    worker = next(iter(daemon.status()["workers"].values()))
    # Inodes are positions: the table holds the 11 directories seen, not 20,000 files.
    assert worker["directories"] <= 11
    assert worker["rss"] < 200 << 20
    start = time.monotonic()
    cli("unmount", mp)
    assert time.monotonic() - start < 30
