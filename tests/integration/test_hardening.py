"""Hostile stores and unlucky operators: one regression test per defect of the
hardening issue, on both stores where a store is involved.

Bundles are planted as raw objects (no writer checks them); downloads must refuse
what breaks the bundle rules (core/rules.py) with exit 4 and one line, and never
touch anything outside their destination; mounts must fail the bad entry or read
with EIO, never serve wrong bytes.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import threading
import time

import pytest
from support.files import write
from support.processes import emulator_pid

from support.planting import T, Planter, dir_entry, file_entry, link_entry

from datamonfs.core.encoding import VERSION, encode
from datamonfs.core.stores.local import LocalStore

@pytest.fixture
def planter(cli):
    cli("repo", "create", "r")
    return Planter(cli.store_url)


class Sandbox:
    """DEST inside an otherwise empty directory, beside a victim directory."""

    def __init__(self, tmp_path):
        self.top = tmp_path
        self.box = tmp_path / "sandbox"
        self.dest = str(self.box / "dest")
        write(self.box / "victim", "keep.txt", b"precious")
        os.symlink("keep.txt", self.box / "victim" / "link")
        self.before = self.state()

    def __truediv__(self, name: str):
        return self.box / name

    def state(self) -> tuple:
        seen = {}
        for dirpath, dirnames, filenames in os.walk(self.box):
            dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) != self.dest]
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                content = os.readlink(path) if stat.S_ISLNK(st.st_mode) else (
                    open(path, "rb").read() if stat.S_ISREG(st.st_mode) else None)
                seen[path] = (st.st_mode, st.st_mtime_ns, content)
        return seen, sorted(os.listdir(self.top))

    def unchanged(self) -> bool:
        """Everything but DEST is as it was (and nothing new appeared beside the sandbox)."""
        return self.state() == self.before


@pytest.fixture
def sandbox(tmp_path):
    return Sandbox(tmp_path)


def refused(cli, ref: str, dest: str, *args: str, what: str = "") -> str:
    r = cli("bundle", "download", ref, dest, *args, expect=4, timeout=60)
    assert r.err.startswith("datamonfs: error: ") and r.err.count("\n") == 1, r.err
    assert what in r.err
    return r.err


# -- 1 and 2: nothing is written outside the destination ---------------------------------


def test_links_through_links_and_duplicates_across_pages_cannot_escape(cli, planter, sandbox):
    """The published attack: `l -> .`, `z -> l/..` (which reads as harmless text), then
    a directory `z` on a later page whose file lands in `l/../sub`: outside DEST."""
    evil = planter.chunk(b"evil")
    sub = planter.tree([file_entry("evil", [(evil, 4)])])
    zdir = planter.tree([dir_entry("sub", sub, 1, 4)])
    root = planter.paged([[link_entry("l", "."), link_entry("z", "l/..")],
                          [dir_entry("z", zdir, 1, 4)]])
    planter.bundle(root, 3, 4)
    for args in ((), ("--filter", "*"), ("--filter", "z/*")):
        refused(cli, "r:bad", sandbox.dest, *args, "--force")
    assert sandbox.unchanged()
    assert not os.path.exists(sandbox / "sub") and not os.path.exists(sandbox.top / "sub")
    # Each gap on its own is refused too.
    for entries, why in (([link_entry("l", "."), link_entry("z", "l/..")], "climbs"),
                         ([link_entry("esc", "a/../..")], "climbs")):
        planter.bundle(planter.tree(entries), len(entries), 0, label="gap")
        refused(cli, "r:gap", sandbox.dest, "--force", what=why)
    dup = planter.paged([[file_entry("a", [(evil, 4)]), file_entry("b", [(evil, 4)])],
                         [file_entry("b", [(evil, 4)]), file_entry("c", [(evil, 4)])]])
    planter.bundle(dup, 4, 16, label="dup")
    refused(cli, "r:dup", sandbox.dest, "--force", what="later page")
    assert sandbox.unchanged()


def test_a_symlink_already_in_the_destination_is_never_followed(cli, planter, sandbox):
    data = planter.chunk(b"payload")
    inner = planter.tree([file_entry("f", [(data, 7)])])
    planter.bundle(planter.tree([dir_entry("d", inner, 1, 7)]), 1, 7)
    os.makedirs(sandbox.dest)
    os.symlink("../victim", os.path.join(sandbox.dest, "d"))
    for args in ((), ("--filter", "*")):
        r = cli("bundle", "download", "r:bad", sandbox.dest, "--force", *args, expect=1)
        assert "is a symlink or a file in the destination" in r.err
    assert sandbox.unchanged() and not os.path.exists(sandbox / "victim" / "f")


def test_upload_and_download_refuse_a_link_escaping_through_another(cli, planter, tmp_path):
    src = tmp_path / "s"
    os.makedirs(src / "sub")
    os.symlink(".", src / "sub" / "l")
    os.symlink("l/../..", src / "sub" / "esc")
    r = cli("bundle", "upload", "r", str(src), "-m", "x", expect=1)
    assert "symlink sub/esc -> l/../.." in r.err and "nothing was uploaded" in r.err
    assert cli("bundle", "list", "r").out == ""
    sub = planter.tree([link_entry("esc", "l/../.."), link_entry("l", ".")])
    planter.bundle(planter.tree([dir_entry("sub", sub, 2, 0)]), 2, 0)
    refused(cli, "r:bad", str(tmp_path / "out"), what="sub")
    assert not os.path.lexists(tmp_path / "out" / "sub" / "esc")


def test_links_that_climb_within_the_bundle_still_work(cli, tmp_path):
    src = tmp_path / "s"
    write(src, "shared/data.txt", b"shared")
    os.makedirs(src / "a" / "b")
    os.symlink("../../shared/data.txt", src / "a" / "b" / "up")
    os.symlink("./b/../b", src / "a" / "odd")  # climbs after a name: refused
    cli("repo", "create", "r")
    r = cli("bundle", "upload", "r", str(src), "-m", "x", expect=1)
    assert "a/odd -> ./b/../b" in r.err and "every '..' first" in r.err
    os.unlink(src / "a" / "odd")
    cli("bundle", "upload", "r", str(src), "-m", "x")
    cli("bundle", "download", "r", str(tmp_path / "out"))
    assert open(tmp_path / "out" / "a" / "b" / "up", "rb").read() == b"shared"


# -- 3: a chunk list that lies about sizes -----------------------------------------------


def test_mount_fails_reads_of_a_chunk_list_that_lies(cli, planter, daemon, tmp_path):
    h = planter.chunk(b"hello!")
    planter.bundle(planter.tree([file_entry("big", [(h, 1000)]),
                                 file_entry("good", [(h, 6)]),
                                 file_entry("lie", [(h, 3), (h, 6)])]), 3, 1015)
    for path in ("big", "lie"):
        refused(cli, "r:bad", str(tmp_path / f"out-{path}"), "--filter", path)
    mp = daemon.mount("r:bad")
    with open(os.path.join(mp, "good"), "rb") as f:  # caches the chunk
        assert f.read() == b"hello!"
    for name, size in (("lie", 9), ("big", 1000)):
        assert os.stat(os.path.join(mp, name)).st_size == size
        with pytest.raises(OSError) as e:
            with open(os.path.join(mp, name), "rb") as f:
                f.read()
        assert e.value.errno == errno.EIO, name
    assert daemon.status()["mounts"] == 1


def test_mount_checks_an_inline_chunk_list_when_the_file_is_opened(cli, planter, daemon,
                                                                  tmp_path):
    """A read-only mount lists a page without checking its files' inline chunk lists (a walk
    only stats them): a list that breaks the rules is refused when its file is opened, with
    EIO, and never yields a byte. A download checks every list as it reads the tree."""
    h = planter.chunk(b"hello!")
    bad = {"short": file_entry("short", [(h, 6)], size=7),  # sizes do not add up
           "zero": file_entry("zero", [(h, 0)]),  # a chunk size out of range
           "noaddr": file_entry("noaddr", [("xyz", 6)]),  # not an address
           "nopack": ["nopack", "file", 0o644, T, 6,  # a pack the table does not have
                      {"chunks": [[h, 6, 1, 0]], "packs": [h]}]}
    planter.bundle(planter.tree([file_entry("good", [(h, 6)]), *sorted(bad.values())]), 5, 25)
    refused(cli, "r:bad", str(tmp_path / "out"), "--filter", "good", what="'noaddr'")
    mp = daemon.mount("r:bad")
    assert sorted(os.listdir(mp)) == sorted([*bad, "good"])
    for name, entry in bad.items():
        assert os.stat(os.path.join(mp, name)).st_size == entry[4]
        with pytest.raises(OSError) as e:
            with open(os.path.join(mp, name), "rb") as f:
                f.read()
        assert e.value.errno == errno.EIO, name
    assert open(os.path.join(mp, "good"), "rb").read() == b"hello!"
    assert daemon.status()["mounts"] == 1


# -- 5, 6, 7: hostile metadata, tree bombs, privilege bits ---------------------------------


def test_hostile_metadata_is_refused_with_one_line(cli, planter, tmp_path):
    x = planter.chunk(b"x")
    cases = {
        "surrogate-name": json.dumps({"v": VERSION, "type": "tree",
                                      "entries": [file_entry("a\udc80", [(x, 1)])]}),
        "surrogate-target": json.dumps({"v": VERSION, "type": "tree",
                                        "entries": [link_entry("l", "t\ud800")]}),
        "huge-mtime": encode({"v": VERSION, "type": "tree",
                              "entries": [file_entry("f", [(x, 1)], mtime=10**30)]}),
        "negative-mtime": encode({"v": VERSION, "type": "tree",
                                  "entries": [file_entry("f", [(x, 1)], mtime=-10**30)]}),
    }
    for label, raw in cases.items():
        tree = planter.raw(raw if isinstance(raw, bytes) else raw.encode())
        planter.bundle(tree, 1, 0 if "target" in label else 1, label=label)
        err = refused(cli, f"r:{label}", str(tmp_path / label))
        assert "out of range" in err or "UTF-8" in err, err
        cli("bundle", "files", f"r:{label}", expect=4)


@pytest.mark.parametrize("store_url", ["local"], indirect=True)  # 2,000 objects
def test_a_deep_tree_is_refused_before_it_is_written(cli, planter, tmp_path):
    x = planter.chunk(b"x")
    tree = planter.tree([file_entry("f", [(x, 1)])])
    for _ in range(2_000):
        tree = planter.tree([dir_entry("d", tree, 1, 1)])
    planter.bundle(tree, 1, 1)
    refused(cli, "r:bad", str(tmp_path / "out"), what="256 levels")
    depth = sum(1 for _ in os.walk(tmp_path / "out"))
    assert depth <= 257
    cli("bundle", "files", "r:bad", expect=4)


@pytest.mark.timeout(120)
def test_a_tree_bomb_is_refused_quickly(cli, planter, daemon, tmp_path):
    """25 small objects whose directories reference one another: 2**24 paths, while the
    bundle claims one file. Downloads, listings and a mount all stop at once."""
    x = planter.chunk(b"x")
    tree, files = planter.tree([file_entry("f", [(x, 1)])]), 1
    for _ in range(24):  # each level claims what is below it, honestly
        tree = planter.tree([dir_entry("a", tree, files, files), dir_entry("b", tree, files, files)])
        files *= 2
    planter.bundle(tree, 1, 1)
    start = time.monotonic()
    for args in ((), ("--filter", "*/f")):
        refused(cli, "r:bad", str(tmp_path / "out"), *args, "--force", what="claims")
    cli("bundle", "files", "r:bad", expect=4)
    if cli.store_url.startswith("gs://"):  # a local store is read in place: no prefetch
        cli("cache", "prefetch", "r:bad", expect=4)
    assert time.monotonic() - start < 60
    mp = daemon.mount("r:bad")
    with pytest.raises(OSError) as e:
        os.listdir(mp)
    assert e.value.errno == errno.EIO
    # Lying totals inside, honest at the top: refused at the lie.
    planter.bundle(planter.tree([dir_entry("a", tree, 1, 1)]), 1, 1, label="lie")
    refused(cli, "r:lie", str(tmp_path / "out2"), what="claims")


def test_download_strips_setuid_and_setgid(cli, planter, tmp_path):
    x = planter.chunk(b"#!/bin/sh\n")
    sub = planter.tree([file_entry("tool", [(x, 10)], mode=0o6755)])
    planter.bundle(planter.tree([["d", "dir", 0o2775, T, 10, [sub, 1]]]), 1, 10)
    cli("bundle", "download", "r:bad", str(tmp_path / "out"))
    assert stat.S_IMODE(os.stat(tmp_path / "out" / "d" / "tool").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(tmp_path / "out" / "d").st_mode) == 0o775


def test_mounts_are_nosuid_nodev_and_fail_only_the_bad_entry(cli, planter, daemon):
    x = planter.chunk(b"x")
    planter.bundle(planter.tree([file_entry("bad", [(x, 1)], mtime=10**30),
                                 file_entry("good", [(x, 1)]), link_entry("up", "../..")]),
                   3, 2)
    mp = daemon.mount("r:bad")
    with open("/proc/self/mountinfo") as f:
        opts = next(line.split()[5] for line in f if line.split()[4] == mp)
    assert "nosuid" in opts and "nodev" in opts
    assert sorted(os.listdir(mp)) == ["good", "up"]  # the bad entry alone is left out
    with pytest.raises(OSError) as e:
        os.stat(os.path.join(mp, "bad"))
    assert e.value.errno == errno.EIO
    with pytest.raises(OSError) as e:  # a link out of the mount is never handed out
        os.readlink(os.path.join(mp, "up"))
    assert e.value.errno == errno.EIO
    assert open(os.path.join(mp, "good"), "rb").read() == b"x"


# -- 8, 9: a full store, a killed writer's temp files ---------------------------------------


@pytest.fixture
def tiny_store(tmp_path):
    """A local store on a 4 MiB tmpfs, unmounted at the end."""
    root = tmp_path / "tiny"
    os.makedirs(root)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(root)], check=True)
    try:
        yield "file://" + str(root / "store")
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


def test_a_full_store_is_named_not_the_source_folder(tmp_path, tiny_store):
    from support.cli import CLI

    cli = CLI(str(tmp_path / "home"), tiny_store)
    cli("config", "create", "--name", "Ada", "--email", "ada@example.org")
    cli("repo", "create", "r")
    write(tmp_path / "src", "source.bin", os.urandom(6 << 20))
    r = cli("bundle", "upload", "r", str(tmp_path / "src"), "-m", "x", expect=3)
    assert "is full" in r.err and tiny_store[len("file://"):] in r.err
    assert "source.bin" not in r.err and r.err.count("\n") == 1


def test_temp_files_of_dead_writers_are_swept(tmp_path):
    store = LocalStore(str(tmp_path / "s"))
    store.put("a/b", b"1")
    boot, pid, started = store._writer[1].split(".")
    tmp = tmp_path / "s" / ".tmp"
    same_pid_earlier = tmp / f"{boot}.{pid}.{int(started) - 1}.0123456789ab"
    dead = tmp / f"{boot}.999999999.1.0123456789ab"
    mine = tmp / f"{boot}.{pid}.{started}.0123456789ab"
    old_style = tmp / f"{pid}-0"
    for path in (same_pid_earlier, dead, mine, old_style):
        path.write_bytes(b"partial")
    os.utime(old_style, (0, 0))
    again = LocalStore(str(tmp_path / "s"))
    assert sorted(os.listdir(tmp)) == [mine.name]
    again.put("a/c", b"2")  # no collision with anything left behind
    assert again.get("a/c") == b"2"


# -- 10: a hung store ---------------------------------------------------------------------


@pytest.mark.parametrize("store_url", ["gcs"], indirect=True)
def test_a_hung_store_fails_reads_within_its_timeout(cli, daemon, tmp_path):
    """The emulator stops answering (SIGSTOP) while two readers read different parts of
    one chunk nobody has cached: the one that waits for the other's fetch fails with it,
    once the store timeout has passed, rather than fetching again (twice the timeout)."""
    write(tmp_path / "src", "f", os.urandom(3 << 20))
    cli("repo", "create", "r")
    cli("bundle", "upload", "r", str(tmp_path / "src"), "-m", "x")
    timeout = 4.0
    cli.env["DATAMONFS_STORE_TIMEOUT"] = str(timeout)
    cli("daemon", "stop")
    daemon.start()
    mp = daemon.mount("r")
    results: dict = {}

    def read_at(offset: int, delay: float) -> None:
        time.sleep(delay)
        start = time.monotonic()
        try:
            os.pread(fds[offset], 4096, offset)
            results[offset] = ("read", time.monotonic() - start)
        except OSError as e:
            results[offset] = (e.errno, time.monotonic() - start)

    assert os.stat(os.path.join(mp, "f")).st_size == 3 << 20
    # Opened before the store hangs: the tree and the chunk list (an object of its own for
    # the ~40 chunks of format 2) are read, only bytes wait.
    fds = {offset: os.open(os.path.join(mp, "f"), os.O_RDONLY) for offset in (0, 200_000)}
    pid = emulator_pid(cli.env["STORAGE_EMULATOR_HOST"])
    os.kill(pid, signal.SIGSTOP)
    try:
        readers = [threading.Thread(target=read_at, args=(offset, delay))
                   for offset, delay in ((0, 0), (200_000, 0.5))]
        for t in readers:
            t.start()
        for t in readers:
            t.join(60)
    finally:
        os.kill(pid, signal.SIGCONT)
        for fd in fds.values():
            os.close(fd)
    for offset, (outcome, elapsed) in results.items():
        assert outcome == errno.EIO, (offset, outcome)
        assert elapsed < timeout * 1.5, (offset, elapsed)
    assert len(results) == 2


# -- 11, 12: mountpoints and resuming ------------------------------------------------------


@pytest.mark.parametrize("store_url", ["local"], indirect=True)
def test_an_unreadable_mountpoint_is_a_bad_mountpoint(cli, daemon, tmp_path):
    write(tmp_path / "src", "f", b"x")
    cli("repo", "create", "r")
    cli("bundle", "upload", "r", str(tmp_path / "src"), "-m", "x")
    mp = daemon.mountpoint()
    via_proc = "/proc/1/root" + mp
    r = cli("mount", "r", via_proc, expect=None)
    assert r.err.count("\n") == 1 and "Traceback" not in r.err, r.err
    if r.code:  # /proc/1/root is not ours to read here: said as much, in one line
        assert r.code == 1 and "cannot use mountpoint" in r.err
    else:
        cli("unmount", mp)
    (reply,) = daemon.request(json.dumps({"id": 1, "op": "mount", "ref": "r",
                                          "mountpoint": via_proc + "x"}).encode() + b"\n")
    assert reply["error"]["code"] in ("bad_mountpoint", "not_found"), reply


@pytest.mark.parametrize("store_url", ["local"], indirect=True)
def test_mounting_again_what_is_mounted_succeeds(cli, daemon, tmp_path):
    write(tmp_path / "src", "f", b"x")
    cli("repo", "create", "r")
    cli("bundle", "upload", "r", str(tmp_path / "src"), "-m", "x", "--label", "v1")
    rw = daemon.mountpoint()
    first = cli("mount", "--rw", "r:main", rw)
    again = cli("mount", "--rw", "r:main", rw)
    assert "already mounted r:main writable" in again.err
    assert again.last_line == first.last_line
    ro = daemon.mount("r:v1")
    assert "already mounted" in cli("mount", "r:v1", ro).err
    assert "already mounted" in cli("mount", "r:main", ro, expect=1).err  # another ref
    assert "already mounted" in cli("mount", "r:v1", rw, expect=1).err
    cli("unmount", rw)
    cli("unmount", ro)
