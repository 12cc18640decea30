"""Read-only mounts through the real daemon, on both stores: content, attributes, errors.

Every FUSE session runs in a worker process of the daemon (a FUSE server and a
blocking client in one thread deadlock); the `daemon` fixture unmounts and ends
everything it started, by pid, also when a test fails.
"""

from __future__ import annotations

import errno
import json
import os
import random
import stat
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.processes import emulator_pid, mounts_under


def make_tree(root: str, big: int) -> dict[str, bytes]:
    """A small tree with the cases that matter; returns {relative path: content}."""
    rnd = random.Random(7)
    files = {
        "empty": b"",
        "hello.txt": b"hello\n",
        "sub/deeper/data.bin": rnd.randbytes(big),  # several chunks
        "sub/exec.sh": b"#!/bin/sh\necho hi\n",
        "sub/private": b"secret",
        "name with spaces é.txt": b"unicode names",
    }
    for rel, data in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    os.chmod(os.path.join(root, "sub/exec.sh"), 0o755)
    os.chmod(os.path.join(root, "sub/private"), 0o600)
    os.makedirs(os.path.join(root, "emptydir"))
    os.symlink("hello.txt", os.path.join(root, "link"))
    os.symlink("deeper/data.bin", os.path.join(root, "sub/rel-link"))
    os.utime(os.path.join(root, "hello.txt"), ns=(1_000_000_000, 1_234_567_891_234_567_891))
    os.utime(os.path.join(root, "sub"), ns=(1_000_000_000, 1_500_000_000_123_456_789))
    return files


def upload(cli, src: str, repo: str = "data", label: str = "v1") -> str:
    cli("repo", "create", repo, expect=None)
    return cli("bundle", "upload", repo, src, "-m", "test", "--label", label).last_line


def assert_same_tree(src: str, mnt: str) -> None:
    """Names, kinds, sizes, modes, mtimes, link targets and bytes all as uploaded."""
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        there = os.path.normpath(os.path.join(mnt, rel))
        assert sorted(os.listdir(there)) == sorted(dirnames + filenames), rel
        for name in dirnames + filenames:
            a, b = os.path.join(dirpath, name), os.path.join(there, name)
            sa, sb = os.lstat(a), os.lstat(b)
            assert stat.S_IFMT(sa.st_mode) == stat.S_IFMT(sb.st_mode), b
            if not stat.S_ISDIR(sa.st_mode):
                assert stat.S_IMODE(sa.st_mode) == stat.S_IMODE(sb.st_mode), b
                assert sa.st_size == sb.st_size, b
            assert sa.st_mtime_ns == sb.st_mtime_ns, b
            if stat.S_ISLNK(sa.st_mode):
                assert os.readlink(a) == os.readlink(b)
            elif stat.S_ISREG(sa.st_mode):
                with open(a, "rb") as fa, open(b, "rb") as fb:
                    assert fa.read() == fb.read(), b


def big_size(cli) -> int:
    # The GCS emulator slows down as objects pile up: keep its data small.
    return 3 << 20 if cli.store_url.startswith("gs://") else 9 << 20


def test_mount_shows_bundle_as_uploaded(cli, daemon, tmp_path):
    src = str(tmp_path / "src")
    make_tree(src, big_size(cli))
    bundle = upload(cli, src)
    mp = daemon.mountpoint()
    r = cli("mount", "data:v1", mp)
    assert r.last_line == bundle
    assert_same_tree(src, mp)
    assert stat.S_IMODE(os.stat(mp).st_mode) == 0o755
    # Attributes the daemon adds: the bundle on every inode, statfs totals.
    assert os.getxattr(os.path.join(mp, "sub/exec.sh"), "user.datamonfs.bundle") == bundle.encode()
    assert os.getxattr(mp, "user.datamonfs.ref") == b"data:v1"
    assert "user.datamonfs.repo" in os.listxattr(mp)
    with pytest.raises(OSError) as e:
        os.getxattr(mp, "user.other")
    assert e.value.errno == errno.ENODATA
    vfs = os.statvfs(mp)
    assert vfs.f_files == 8 and vfs.f_bfree == 0
    records = daemon.mounts()
    assert [(r["mountpoint"], r["ref"], r["bundle"], r["state"]) for r in records] == [
        (mp, "data:v1", bundle, "mounted")]
    assert bundle in cli("mounts").out
    [reply] = daemon.request(b'{"id": 1, "op": "cache_stats"}\n')
    # A local store is read in place (cache/in_place.py): nothing goes to the block cache.
    fetched = reply["cache"]["bytes_fetched"]
    assert reply["ok"] and (fetched >= big_size(cli) if cli.store_url.startswith("gs://")
                            else fetched == 0)
    cli("unmount", mp)
    assert mounts_under(mp) == [] and os.listdir(mp) == []
    assert daemon.mounts() == []


@pytest.mark.skipif(os.geteuid() != 0, reason="the read-ahead is a root-only sysfs knob")
def test_mount_is_ready_with_its_read_ahead_raised(cli, daemon, tmp_path):
    """The kernel caps a FUSE mount's read-ahead when the daemon answers its INIT; set before
    that, it fell back to 128 KiB (reads of 128 KiB, not 1 MiB)."""
    src = str(tmp_path / "src")
    make_tree(src, 1000)
    upload(cli, src)
    mp = daemon.mountpoint()
    cli("mount", "data:v1", mp)
    st = os.stat(mp)
    with open(f"/sys/class/bdi/{os.major(st.st_dev)}:{os.minor(st.st_dev)}/read_ahead_kb") as f:
        assert f.read().strip() == "1024"
    cli("unmount", mp)


def block_files_of(cli) -> list[str]:
    root = os.path.join(cli.home, "cache")
    return [os.path.join(d, name) for d, _, names in os.walk(root) for name in names
            if os.sep + "blocks" + os.sep in os.path.join(d, name)]


@pytest.mark.parametrize("store_url", ["gcs"], indirect=True)  # a local store is read in place
def test_reads_stay_right_when_cached_blocks_are_damaged_or_evicted(cli, daemon, tmp_path):
    """Each read of a fresh mount (no segment in memory yet) goes to the block cache, on the
    event loop where the page cache holds the block files: damage written through the page
    cache is never served, and block files gone are fetched again."""
    data = random.Random(4).randbytes(big_size(cli))
    os.makedirs(tmp_path / "src")
    (tmp_path / "src" / "f.bin").write_bytes(data)
    upload(cli, str(tmp_path / "src"))
    mp = daemon.mountpoint()

    offsets = random.Random(5).sample(range(0, len(data) - 4096, 4096), 40)

    def read_through_a_fresh_mount() -> None:
        """Small reads in random order (each asks the block cache for a range of a chunk),
        then the whole file in order, all checked."""
        cli("mount", "data:v1", mp)
        try:
            with open(os.path.join(mp, "f.bin"), "rb", buffering=0) as f:
                for at in offsets:
                    assert os.pread(f.fileno(), 4096, at) == data[at:at + 4096], at
                assert f.read() == data
        finally:
            cli("unmount", mp)

    read_through_a_fresh_mount()  # now cached, the block files in the page cache
    blocks = block_files_of(cli)
    assert blocks
    for block in blocks:  # a flipped byte in every 16 KiB piece, through the page cache
        with open(block, "r+b") as f:
            for at in range(100, os.path.getsize(block), 16 << 10):
                f.seek(at)
                byte = f.read(1)
                f.seek(at)
                f.write(bytes([byte[0] ^ 0xFF]))
    read_through_a_fresh_mount()
    for block in block_files_of(cli):
        os.unlink(block)
    read_through_a_fresh_mount()


@pytest.mark.parametrize("store_url", ["local"], indirect=True)
def test_a_damaged_pack_of_a_local_store_is_never_served(cli, daemon, tmp_path):
    """A local store is read in place (cache/in_place.py), on the event loop when the page
    cache holds the pack: a byte changed through the page cache fails the reads of its
    chunk with EIO; every other byte still reads right, and the mount lives."""
    data = random.Random(6).randbytes(big_size(cli))
    os.makedirs(tmp_path / "src")
    (tmp_path / "src" / "f.bin").write_bytes(data)
    upload(cli, str(tmp_path / "src"))
    mp = daemon.mount("data:v1")
    path = os.path.join(mp, "f.bin")
    with open(path, "rb") as f:
        assert f.read() == data  # the pack is in the page cache now
    store = cli.store_url[len("file://"):]
    (pack,) = [os.path.join(d, n) for d, _, names in os.walk(os.path.join(store, "pack"))
               for n in names]
    damaged = 5 << 20
    with open(pack, "r+b") as f:
        f.seek(damaged)
        byte = f.read(1)
        f.seek(damaged)
        f.write(bytes([byte[0] ^ 0xFF]))
    cli("unmount", mp)
    mp = daemon.mount("data:v1")
    fd = os.open(os.path.join(mp, "f.bin"), os.O_RDONLY)
    try:
        assert os.pread(fd, 1 << 20, 0) == data[:1 << 20]
        with pytest.raises(OSError) as e:
            os.pread(fd, 1 << 20, damaged)
        assert e.value.errno == errno.EIO
        assert os.pread(fd, 4096, len(data) - 4096) == data[-4096:]
    finally:
        os.close(fd)


def test_random_and_concurrent_reads(cli, daemon, tmp_path):
    src = str(tmp_path / "src")
    size = big_size(cli)
    data = random.Random(1).randbytes(size)
    os.makedirs(src)
    with open(os.path.join(src, "f.bin"), "wb") as f:
        f.write(data)
    upload(cli, src)
    mp = daemon.mount("data:v1")
    path = os.path.join(mp, "f.bin")
    rnd = random.Random(2)
    fd = os.open(path, os.O_RDONLY)
    try:
        for _ in range(200):
            off = rnd.randrange(0, size + 10)
            n = rnd.choice([1, 7, 4096, 65536, 300_000, 2 << 20])
            assert os.pread(fd, n, off) == data[off:off + n], (off, n)
    finally:
        os.close(fd)

    errors: list[str] = []

    def reader(seed: int) -> None:
        r = random.Random(seed)
        with open(path, "rb", buffering=0) as f:
            for _ in range(30):
                off, n = r.randrange(size), r.randrange(1, 1 << 20)
                f.seek(off)
                if f.read(n) != data[off:off + n]:
                    errors.append(f"reader {seed} at {off}+{n}")
            f.seek(0)
            if f.read() != data:
                errors.append(f"reader {seed}: whole file differs")

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_writes_are_refused_with_erofs(cli, daemon, tmp_path):
    src = str(tmp_path / "src")
    make_tree(src, 1000)
    upload(cli, src)
    mp = daemon.mount("data:v1")
    f = os.path.join(mp, "hello.txt")
    attempts = {
        "open for writing": lambda: open(f, "r+b"),
        "append": lambda: open(f, "ab"),
        "create": lambda: open(os.path.join(mp, "new"), "wb"),
        "mkdir": lambda: os.mkdir(os.path.join(mp, "d")),
        "rmdir": lambda: os.rmdir(os.path.join(mp, "emptydir")),
        "unlink": lambda: os.unlink(f),
        "rename": lambda: os.rename(f, os.path.join(mp, "moved")),
        "chmod": lambda: os.chmod(f, 0o777),
        "utime": lambda: os.utime(f, (1, 1)),
        "truncate": lambda: os.truncate(f, 0),
        "symlink": lambda: os.symlink("x", os.path.join(mp, "l2")),
        "hard link": lambda: os.link(f, os.path.join(mp, "h")),
        "setxattr": lambda: os.setxattr(f, "user.x", b"1"),
    }
    for what, attempt in attempts.items():
        with pytest.raises(OSError) as e:
            attempt()
        assert e.value.errno == errno.EROFS, what
    with open(f, "rb") as fh:  # still readable, unchanged
        assert fh.read() == b"hello\n"


def test_mount_errors(cli, daemon, tmp_path):
    src = str(tmp_path / "src")
    make_tree(src, 1000)
    upload(cli, src)
    missing = str(tmp_path / "mnt" / "missing")
    r = cli("mount", "data:v1", missing, expect=1)
    assert "does not exist" in r.err
    a_file = tmp_path / "mnt" / "file"
    a_file.write_text("x")
    r = cli("mount", "data:v1", str(a_file), expect=1)
    assert "not a directory" in r.err
    full = daemon.mountpoint()
    open(os.path.join(full, "x"), "w").close()
    r = cli("mount", "data:v1", full, expect=1)
    assert "not empty" in r.err
    mp = daemon.mount("data:v1")
    r = cli("mount", "data:latest", mp, expect=1)  # something else is mounted there
    assert "already mounted" in r.err
    assert "already mounted data:v1" in cli("mount", "data:v1", mp).err  # the same: fine
    r = cli("mount", "data:nope", daemon.mountpoint(), expect=1)
    assert "no label, branch or bundle 'nope'" in r.err
    r = cli("mount", "nosuchrepo:v1", daemon.mountpoint(), expect=1)
    assert "no repo named" in r.err
    r = cli("unmount", str(tmp_path), expect=1)
    assert "no datamonfs mount" in r.err
    # A busy mount is not torn away: the unmount is refused and the mount keeps serving.
    busy = open(os.path.join(mp, "hello.txt"), "rb")
    try:
        r = cli("unmount", mp, expect=1)
        assert "busy" in r.err
        assert busy.read() == b"hello\n"
    finally:
        busy.close()
    cli("unmount", mp)
    assert [m["mountpoint"] for m in daemon.mounts()] == []
    assert len(mounts_under(daemon.root)) == 0


def test_store_failure_mid_read_gives_eio_then_recovers(cli, daemon, tmp_path):
    src = str(tmp_path / "src")
    os.makedirs(src)
    blobs = {name: random.Random(name).randbytes(300_000) for name in ("a", "b")}
    for name, data in blobs.items():
        with open(os.path.join(src, name), "wb") as f:
            f.write(data)
    upload(cli, src)
    # A daemon whose store gives up sooner, so that the test does not wait long for EIO.
    cli.env["DATAMONFS_STORE_TIMEOUT"] = "2"
    cli("daemon", "stop")
    daemon.start()
    mp = daemon.mount("data:v1")
    with open(os.path.join(mp, "a"), "rb") as f:
        assert f.read() == blobs["a"]
    with _store_down(cli):
        with pytest.raises(OSError) as e:
            with open(os.path.join(mp, "b"), "rb") as f:
                f.read()
        assert e.value.errno == errno.EIO
        assert daemon.status()["mounts"] == 1  # the daemon and the mount live on
    with open(os.path.join(mp, "b"), "rb") as f:
        assert f.read() == blobs["b"]
    assert [m["state"] for m in daemon.mounts()] == ["mounted"]


class _store_down:
    """Local store: its packs vanish for a while. GCS: the emulator stops answering
    (SIGSTOP), so reads time out after the store's bounded retries."""

    def __init__(self, cli):
        self.cli = cli
        self.url = cli.store_url

    def __enter__(self):
        import signal

        if self.url.startswith("file://"):
            root = self.url[len("file://"):]
            os.rename(os.path.join(root, "pack"), os.path.join(root, "pack.away"))
        else:
            self.pid = emulator_pid(self.cli.env["STORAGE_EMULATOR_HOST"])
            os.kill(self.pid, signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        import signal

        if self.url.startswith("file://"):
            root = self.url[len("file://"):]
            os.rename(os.path.join(root, "pack.away"), os.path.join(root, "pack"))
        else:
            os.kill(self.pid, signal.SIGCONT)


# -- a generated tree, kept small ------------------------------------------------------------

_names = st.text(st.characters(codec="utf-8", exclude_characters="/\0",
                               exclude_categories=("Cs",)), min_size=1, max_size=12).filter(
    lambda s: s not in (".", ".."))
_trees = st.recursive(
    st.binary(max_size=3000),
    lambda children: st.dictionaries(_names, children, max_size=4),
    max_leaves=10,
).filter(lambda t: isinstance(t, dict))


def _write(root: str, tree: dict) -> None:
    os.makedirs(root, exist_ok=True)
    for name, node in tree.items():
        path = os.path.join(root, name)
        if isinstance(node, dict):
            _write(path, node)
        else:
            with open(path, "wb") as f:
                f.write(node)


@settings(max_examples=5, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(tree=_trees)
def test_generated_trees_read_back(cli, daemon, tmp_path, tree):
    n = daemon._n + 1
    src = str(tmp_path / f"gen{n}")
    _write(src, tree)
    upload(cli, src, repo="gen", label=f"g{n}")
    mp = daemon.mount(f"gen:g{n}")
    try:
        assert_same_tree(src, mp)
    finally:
        cli("unmount", mp)


def test_mounts_json_when_idle(cli, daemon):
    assert json.loads(cli("mounts", "--json").out) == []
    assert cli("mounts").out == ""
