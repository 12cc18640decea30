"""Through the daemon: who a bundle's files belong to (`mount --uid/--gid`, the protocol's
`uid`/`gid`), who may ask for what, and what read-only mounts show of link counts and
name limits."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys

import pytest
from support.files import write
from support.processes import alive, wait_for

LOCAL = pytest.mark.parametrize("store_url", ["local"], indirect=True)
USER = 4321


def reachable(tmp_path) -> None:
    """Let other users through pytest's 0700 directories (the mounts are root's, with
    allow_other: what they show is for everyone)."""
    for path in (tmp_path, *tmp_path.parents):
        if str(path).startswith("/tmp/") and len(path.parts) > 2:
            os.chmod(path, os.stat(path).st_mode | 0o711)


def make_bundle(cli, tmp_path) -> None:
    src = tmp_path / "src"
    write(src, "top.txt", b"top", 0o600)
    write(src, "a/b/c/deep.txt", b"deep")
    os.makedirs(src / "a" / "e")
    cli("repo", "create", "r")
    cli("bundle", "upload", "r", str(src), "-m", "base", "--label", "v1")


@LOCAL
def test_read_only_mount_shows_the_owner_asked_for(cli, daemon, tmp_path):
    make_bundle(cli, tmp_path)
    plain = daemon.mount("r:v1")
    st = os.stat(os.path.join(plain, "top.txt"))
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())  # the peer's
    mp = daemon.mountpoint()
    reachable(tmp_path / "mnt")
    cli("mount", "--uid", str(USER), "--gid", "4400", "r:v1", mp)
    for rel in ("", "top.txt", "a", "a/b/c/deep.txt"):
        st = os.stat(os.path.join(mp, rel))
        assert (st.st_uid, st.st_gid) == (USER, 4400), rel
    # the kernel enforces what it shows (allow_other: root's mount): USER may read its 0600 file
    out = subprocess.run(["setpriv", f"--reuid={USER}", f"--regid={USER}", "--clear-groups",
                          "cat", os.path.join(mp, "top.txt")], capture_output=True, text=True)
    assert (out.returncode, out.stdout) == (0, "top")
    other = subprocess.run(["setpriv", "--reuid=4322", "--regid=4322", "--clear-groups", "cat",
                            os.path.join(mp, "top.txt")], capture_output=True, text=True)
    assert other.returncode == 1 and "Permission denied" in other.stderr
    cli("mount", "--uid", "-1", "r:v1", daemon.mountpoint(), expect=2)  # usage: not an id


@LOCAL
def test_read_only_mounts_count_subdirectories_and_refuse_long_names(cli, daemon, tmp_path):
    make_bundle(cli, tmp_path)
    mp = daemon.mount("r:v1")
    links = {rel: os.stat(os.path.join(mp, rel)).st_nlink
             for rel in ("", "a", "a/b", "a/b/c", "a/e")}
    assert links == {"": 3, "a": 4, "a/b": 3, "a/b/c": 2, "a/e": 2}
    assert os.stat(os.path.join(mp, "top.txt")).st_nlink == 1
    local = tmp_path / "src"
    assert {rel: os.stat(os.path.join(local, rel)).st_nlink for rel in links} == links
    for name in ("x" * 256, "x" * 255):
        with pytest.raises(OSError) as e:
            os.stat(os.path.join(mp, name))
        assert e.value.errno == (errno.ENAMETOOLONG if len(name) > 255 else errno.ENOENT)


def request(daemon, payload: dict, uid: int) -> dict:
    """One request on the daemon's socket from a process running as `uid`."""
    code = ("import socket, sys\n"
            "s = socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\n"
            "try:\n    s.sendall(sys.argv[2].encode() + b'\\n')\n"
            "except BrokenPipeError:\n    pass  # refused at once: the answer is waiting\n"
            "print(s.makefile().readline())")
    out = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                          sys.executable, "-c", code, daemon.socket, json.dumps(payload)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@LOCAL
def test_only_root_may_name_another_owner(cli, daemon, tmp_path):
    make_bundle(cli, tmp_path)
    os.chmod(daemon.sockdir, 0o755)  # let USER reach the socket: the check is the daemon's
    os.chmod(daemon.socket, 0o666)
    mp = daemon.mountpoint()
    os.chown(mp, USER, USER)
    reachable(tmp_path / "mnt")
    # USER is not allowed to use this daemon at all (not root, not its user, no group)
    store = {"url": cli.store_url}  # what every mount request names (so only uid/gid is wrong)
    r = request(daemon, {"id": 1, "op": "mount", "ref": "r:v1", "mountpoint": mp, "uid": 0,
                         "store": store}, USER)
    assert r["error"]["code"] == "forbidden"
    # root asks with ids out of range: a bad request, one line, the daemon carries on
    [r] = daemon.request(json.dumps({"id": 2, "op": "mount", "ref": "r:v1", "mountpoint": mp,
                                     "uid": 2**32, "store": store}).encode() + b"\n")
    assert r["error"]["code"] == "bad_request" and "uid" in r["error"]["message"]
    [r] = daemon.request(json.dumps({"id": 3, "op": "mount", "ref": "r:v1", "mountpoint": mp,
                                     "gid": "0", "store": store}).encode() + b"\n")
    assert r["error"]["code"] == "bad_request"
    assert daemon.status()["mounts"] == 0


@LOCAL
def test_a_writable_mount_keeps_the_owner_it_was_made_with(cli, daemon, tmp_path):
    make_bundle(cli, tmp_path)
    mp = daemon.mountpoint()
    cli("mount", "--rw", "--uid", str(USER), "--gid", str(USER), "r:main", mp)
    assert os.stat(os.path.join(mp, "top.txt")).st_uid == USER
    with open(os.path.join(mp, "mine"), "wb") as f:  # made by root: root's
        f.write(b"x")
    assert os.stat(os.path.join(mp, "mine")).st_uid == 0
    # the daemon dies (its worker stops, leaving the mount stale); the overlay is resumed
    # with the owner it was made with
    workers = [m["worker_pid"] for m in daemon.mounts()]
    os.kill(daemon.pid(), signal.SIGKILL)
    for w in workers:
        wait_for(lambda w=w: not alive(w), what=f"worker {w} to exit")
    daemon.start()
    r = cli("mount", "--rw", "--uid", "4322", "r:main", mp, expect=1)
    assert "owner 4321:4321" in r.err
    cli("mount", "--rw", "r:main", mp)
    assert os.stat(os.path.join(mp, "top.txt")).st_uid == USER
    assert os.stat(os.path.join(mp, "mine")).st_uid == 0
    bundle = cli("commit", mp, "-m", "owners are not recorded").last_line
    files = json.loads(cli("bundle", "files", f"r:{bundle}", "--json").out)
    assert sorted(f["path"] for f in files) == ["a/b/c/deep.txt", "mine", "top.txt"]
    assert all(set(f) >= {"path", "size"} and "uid" not in f for f in files)


def test_a_user_may_name_only_themself_and_their_own_groups():
    """The supervisor's check of `uid`/`gid`, for a real process of another user."""
    from datamonfs.daemon import protocol
    from datamonfs.daemon.auth import Peer
    from datamonfs.daemon.lifecycle import _owner_fields

    proc = subprocess.Popen(["setpriv", f"--reuid={USER}", f"--regid={USER}", "--groups=4400",
                             "sleep", "60"])
    try:
        wait_for(lambda: "Groups:\t4400" in open(f"/proc/{proc.pid}/status").read(),
                 what="the user's process")
        peer = Peer(proc.pid, USER, USER)
        assert _owner_fields({}, peer) is None
        assert _owner_fields({"gid": 4400}, peer) == {"owner_uid": USER, "owner_gid": 4400}
        assert _owner_fields({"uid": USER, "gid": USER}, peer) == {"owner_uid": USER,
                                                                   "owner_gid": USER}
        for req in ({"uid": 0}, {"gid": 0}, {"uid": 4322}):
            with pytest.raises(protocol.Refused) as e:
                _owner_fields(req, peer)
            assert e.value.code == "forbidden"
        assert _owner_fields({"uid": 0, "gid": 5}, Peer(1, 0, 0)) == {"owner_uid": 0,
                                                                      "owner_gid": 5}
    finally:
        proc.kill()
        proc.wait()
