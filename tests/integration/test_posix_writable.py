"""A writable mount behaves like a local file system: owners and permissions, atime,
name limits, directory link counts, O_TRUNC times, fallocate, sparse blocks, hard
links, RENAME_EXCHANGE, extended attributes, special files (the items of issue 12).

Each probe below runs in a process of its own, as root and as an unprivileged user
(`setpriv`; the mount is root's, so `allow_other`), once in a writable mount and once
in a plain directory; where a local file system's behaviour is the one to match, the
two runs must report the same. This file is also the probe: `python THIS PROBE DIR`.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import stat
import subprocess
import sys
import time

USER, OTHER = 4321, 4322  # uids (and gids) with no name on the test machine
GROUP = 4400  # a group USER is in (setpriv --groups)

# -- the probes: each gets a directory it may write in and returns what it saw --------------


def _err(fn, *args):
    try:
        r = fn(*args)
        return ["ok", r] if isinstance(r, (int, str, type(None), list)) else ["ok"]
    except OSError as e:
        return ["err", errno.errorcode.get(e.errno, e.errno)]


def _write(path, data, mode=0o644):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _read(path):
    with open(path, "rb") as f:
        return f.read().decode("latin-1")


def _owner(path):
    st = os.lstat(path)
    return [st.st_uid, st.st_gid, oct(stat.S_IMODE(st.st_mode))]


def probe_owners(d):
    """Create with the caller's uid and gid, reopen a 0600 file, chmod, chown, chgrp."""
    os.umask(0o077)
    out = {}
    f = os.path.join(d, "mine")
    _write(f, b"private", 0o600)
    out["file"] = _owner(f)
    out["reopen"] = _err(_read, f)
    out["append"] = _err(lambda: open(f, "ab").close())
    out["chmod"] = _err(os.chmod, f, 0o640)
    out["after chmod"] = _owner(f)
    out["chown to root"] = _err(os.chown, f, 0, -1)
    out["chgrp to own group"] = _err(os.chown, f, -1, GROUP if os.getuid() else 0)
    out["chgrp elsewhere"] = _err(os.chown, f, -1, 4499)
    out["after chgrp"] = _owner(f)
    os.mkdir(os.path.join(d, "dir"), 0o755)
    out["dir"] = _owner(os.path.join(d, "dir"))
    os.symlink("mine", os.path.join(d, "link"))
    out["link"] = _owner(os.path.join(d, "link"))[:2]
    out["mknod regular"] = _err(os.mknod, os.path.join(d, "node"), 0o600 | stat.S_IFREG)
    out["node"] = _owner(os.path.join(d, "node"))
    # a setgid directory gives its group to what is made in it, and its bit to directories
    sg = os.path.join(d, "sgid")
    os.mkdir(sg, 0o770)
    os.chown(sg, -1, GROUP if os.getuid() else 4498)
    os.chmod(sg, 0o2770)
    os.mkdir(os.path.join(sg, "sub"), 0o700)
    _write(os.path.join(sg, "file"), b"x")
    out["sgid sub"] = _owner(os.path.join(sg, "sub"))
    out["sgid file"] = _owner(os.path.join(sg, "file"))
    return out


def probe_foreign(d):
    """What another user may do with USER's files (made by probe_owners)."""
    f = os.path.join(d, "mine")
    return {"read": _err(_read, f), "write": _err(lambda: open(f, "ab").close()),
            "chmod": _err(os.chmod, f, 0o777), "chown": _err(os.chown, f, os.getuid(), -1),
            "unlink in 0755 dir": _err(os.unlink, os.path.join(d, "dir", "x")),
            "setxattr": _err(os.setxattr, f, "user.x", b"1"),
            "utime now": _err(os.utime, f, None)}


def probe_times(d):
    """utimensat sets atime; O_TRUNC of an empty file advances mtime and ctime."""
    f = os.path.join(d, "t")
    _write(f, b"")
    os.utime(f, ns=(1_000_000_007, 2_000_000_009))
    st = os.stat(f)
    out = {"utime": [st.st_atime_ns, st.st_mtime_ns]}
    before = os.stat(f)
    time.sleep(0.02)
    os.close(os.open(f, os.O_WRONLY | os.O_TRUNC))
    after = os.stat(f)
    out["O_TRUNC advances"] = [after.st_mtime_ns > before.st_mtime_ns,
                               after.st_ctime_ns > before.st_ctime_ns]
    os.utime(f, ns=(5, 6))
    time.sleep(0.02)
    os.chmod(f, 0o600)
    st = os.stat(f)
    out["chmod keeps a/mtime, sets ctime"] = [st.st_atime_ns, st.st_mtime_ns,
                                              st.st_ctime_ns > 6]
    return out


def probe_names(d):
    long, longest = "x" * 256, "y" * 255
    out = {n: _err(fn, os.path.join(d, long)) for n, fn in (
        ("stat", os.stat), ("unlink", os.unlink), ("rmdir", os.rmdir), ("mkdir", os.mkdir),
        ("create", lambda p: os.close(os.open(p, os.O_CREAT | os.O_WRONLY))))}
    _write(os.path.join(d, longest), b"fits")
    out["255 bytes"] = _read(os.path.join(d, longest))
    out["rename to 256"] = _err(os.rename, os.path.join(d, longest), os.path.join(d, long))
    return out


def probe_dir_links(d):
    """A directory links itself, its parent's entry and each subdirectory's '..'."""
    os.makedirs(os.path.join(d, "a", "b", "c"))
    os.mkdir(os.path.join(d, "a", "e"))
    _write(os.path.join(d, "a", "file"), b"")
    nl = lambda *p: os.stat(os.path.join(d, *p)).st_nlink  # noqa: E731
    out = {"made": [nl("a"), nl("a", "b"), nl("a", "b", "c")]}
    os.rename(os.path.join(d, "a", "e"), os.path.join(d, "a", "b", "e"))
    out["moved"] = [nl("a"), nl("a", "b")]
    os.rmdir(os.path.join(d, "a", "b", "c"))
    out["removed"] = [nl("a"), nl("a", "b")]
    out["listed"] = sorted(os.listdir(os.path.join(d, "a")))
    return out


def _fallocate(fd, mode, offset, length):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    if libc.fallocate(fd, mode, offset, length):
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


KEEP_SIZE, PUNCH_HOLE, COLLAPSE_RANGE, ZERO_RANGE = 1, 2, 8, 16


def probe_fallocate(d):
    out = {}
    f = os.path.join(d, "pre")
    fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.posix_fallocate(fd, 0, 64 << 20)
        st = os.fstat(fd)
        out["posix_fallocate 64 MiB"] = [st.st_size, st.st_blocks >= (64 << 20) // 512]
        os.pwrite(fd, b"A" * 10000, 4096)
        _fallocate(fd, PUNCH_HOLE | KEEP_SIZE, 8192, 4096)
        out["punched"] = [os.pread(fd, 4, 4096).decode(), os.pread(fd, 8, 8190).hex(),
                          os.fstat(fd).st_size]
        _fallocate(fd, KEEP_SIZE, 64 << 20, 1 << 20)
        out["keep size"] = os.fstat(fd).st_size
        _fallocate(fd, ZERO_RANGE, 4096, 100)
        out["zeroed"] = [os.pread(fd, 4, 4094).hex(), os.pread(fd, 2, 4196).decode()]
        _fallocate(fd, ZERO_RANGE, (64 << 20) - 10, 20)
        out["zero range extends"] = os.fstat(fd).st_size
        out["punch without keep size"] = _err(_fallocate, fd, PUNCH_HOLE, 0, 4096)
    finally:
        os.close(fd)
    return out


def probe_sparse(d):
    f = os.path.join(d, "sparse")
    fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, b"abc", 5 << 30)
        os.fsync(fd)  # a writable mount counts a page once the kernel's cache wrote it back
        st = os.fstat(fd)
        return {"size": st.st_size, "blocks": st.st_blocks, "tail": os.pread(fd, 5, (5 << 30) - 2).hex()}
    finally:
        os.close(fd)


def probe_links(d):
    a, b, sub = os.path.join(d, "a"), os.path.join(d, "b"), os.path.join(d, "sub")
    os.mkdir(sub)
    _write(a, b"shared")
    os.link(a, b)
    os.link(b, os.path.join(sub, "c"))
    out = {"nlink": [os.stat(a).st_nlink, os.stat(b).st_nlink],
           "same inode": os.stat(a).st_ino == os.stat(os.path.join(sub, "c")).st_ino}
    with open(b, "r+b") as f:
        f.write(b"SH")
    out["written through b, read through a"] = _read(a)
    os.chmod(a, 0o600)
    out["mode shared"] = oct(stat.S_IMODE(os.stat(os.path.join(sub, "c")).st_mode))
    os.unlink(a)
    out["after unlink"] = [os.stat(b).st_nlink, _read(b)]
    out["rename onto another name"] = _err(os.rename, b, os.path.join(sub, "c"))
    out["both stay"] = [os.path.exists(b), os.stat(b).st_nlink]
    out["link a directory"] = _err(os.link, sub, os.path.join(d, "dirlink"))
    out["link onto a name"] = _err(os.link, b, os.path.join(sub, "c"))
    os.symlink("sub/c", os.path.join(d, "sym"))
    os.link(os.path.join(d, "sym"), os.path.join(d, "sym2"), follow_symlinks=False)
    out["symlink linked"] = [os.readlink(os.path.join(d, "sym2")),
                             os.lstat(os.path.join(d, "sym")).st_nlink]
    held = os.open(b, os.O_RDONLY)
    os.unlink(b)
    os.unlink(os.path.join(sub, "c"))
    out["last name gone, still open"] = [os.pread(held, 6, 0).decode(), os.fstat(held).st_nlink]
    os.close(held)
    return out


RENAME_EXCHANGE = 2


def _exchange(a, b):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(-100, a.encode(), -100, b.encode(), RENAME_EXCHANGE):
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


def probe_exchange(d):
    f, sub = os.path.join(d, "f"), os.path.join(d, "sub")
    _write(f, b"file")
    os.makedirs(os.path.join(sub, "deeper"))
    out = {"file and dir": _err(_exchange, f, sub)}
    out["now"] = [os.path.isdir(f), _read(sub), sorted(os.listdir(f))]
    out["into itself"] = _err(_exchange, f, os.path.join(f, "deeper"))
    out["missing"] = _err(_exchange, sub, os.path.join(d, "nope"))
    os.mkdir(os.path.join(d, "other"))
    out["across directories"] = _err(_exchange, sub, os.path.join(d, "other"))
    out["link counts"] = [os.stat(d).st_nlink, os.stat(os.path.join(d, "sub")).st_nlink]
    return out


def probe_xattrs(d):
    f = os.path.join(d, "x")
    _write(f, b"")
    os.setxattr(f, "user.a", b"1")
    os.setxattr(f, "user.b", b"\x00\xff")
    out = {"list": sorted(os.listxattr(f)), "get": os.getxattr(f, "user.b").hex()}
    out["create existing"] = _err(os.setxattr, f, "user.a", b"2", os.XATTR_CREATE)
    out["replace missing"] = _err(os.setxattr, f, "user.c", b"2", os.XATTR_REPLACE)
    os.removexattr(f, "user.a")
    out["removed"] = [sorted(os.listxattr(f)), _err(os.getxattr, f, "user.a"),
                      _err(os.removexattr, f, "user.a")]
    out["too large"] = _err(os.setxattr, f, "user.big", bytes(65537))
    out["empty value"] = [_err(os.setxattr, f, "user.e", b""), os.getxattr(f, "user.e").hex()]
    os.mkdir(os.path.join(d, "dir"))
    os.setxattr(os.path.join(d, "dir"), "user.d", b"dir")
    out["dir"] = os.getxattr(os.path.join(d, "dir"), "user.d").decode()
    os.symlink("x", os.path.join(d, "l"))
    out["on a symlink"] = _err(lambda: os.setxattr(os.path.join(d, "l"), "user.s", b"1",
                                                follow_symlinks=False))
    return out


def probe_special(d):
    """FIFOs, device nodes and sockets: a bundle cannot hold them."""
    out = {}
    for name, make in (("fifo", lambda p: os.mkfifo(p)),
                       ("char device", lambda p: os.mknod(p, 0o600 | stat.S_IFCHR, 0)),
                       ("socket", lambda p: os.mknod(p, 0o600 | stat.S_IFSOCK))):
        out[name] = _err(make, os.path.join(d, name.replace(" ", "-")))
    out["left"] = sorted(os.listdir(d))
    return out


PROBES = {name[6:]: fn for name, fn in globals().items() if name.startswith("probe_")}

if __name__ == "__main__":
    print(json.dumps(PROBES[sys.argv[1]](sys.argv[2])))
    sys.exit(0)


# -- the tests ----------------------------------------------------------------------------

import pytest  # noqa: E402
from support.files import tree_snapshot  # noqa: E402
from support.writable import Mounts  # noqa: E402

from datamonfs.core import ingest  # noqa: E402
from datamonfs.core.repository import Author, Repository  # noqa: E402
from datamonfs.core.stores import open_store  # noqa: E402

ADA = Author("Ada", "ada@example.org")


def run_probe(name: str, directory: str, uid: int | None = None) -> dict:
    """Run a probe in a process of its own, as root or as `uid` (USER also in GROUP)."""
    cmd = [sys.executable, os.path.abspath(__file__), name, directory]
    if uid is not None:
        groups = f"--groups={GROUP}" if uid == USER else "--clear-groups"
        cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid}", groups, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert out.returncode == 0, f"probe {name} as {uid}: {out.stderr[-3000:]}"
    return json.loads(out.stdout)


def room(parent: str, name: str) -> str:
    """A directory anyone may write in (as /tmp), for a probe."""
    path = os.path.join(parent, name)
    os.mkdir(path)
    os.chmod(path, 0o1777)
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """One writable mount (root's, so allow_other) and one plain directory on the local
    disk, both where an unprivileged user can reach them."""
    tmp = tmp_path_factory.mktemp("posix")
    for path in (tmp, *tmp.parents):  # pytest makes its directories 0700
        if str(path).startswith("/tmp/") and len(path.parts) > 2:
            os.chmod(path, os.stat(path).st_mode | 0o711)
    store = "file://" + str(tmp / "store")
    repo = Repository(open_store(store))
    repo.create_repo("r", "", ADA)
    (tmp / "src").mkdir()
    (tmp / "src" / "base.txt").write_bytes(b"from the bundle")
    ingest.upload(repo, "r", str(tmp / "src"), "base", ADA)
    mounts = Mounts(str(tmp), store)
    try:
        h = mounts.start("r")
        os.chmod(h.mountpoint, 0o777)
        plain = tmp / "plain"
        plain.mkdir(mode=0o777)
        os.chmod(plain, 0o777)
        yield {"mount": h.mountpoint, "plain": str(plain), "harness": h, "repo": repo}
    finally:
        mounts.cleanup()


WHO = {"root": None, "user": USER}


def both(setup, probe: str, who: str, prep=None) -> tuple[dict, dict]:
    """The probe in a fresh directory of the mount and of the plain directory."""
    results = []
    for where in ("mount", "plain"):
        d = room(setup[where], f"{probe}-{who}")
        if prep:
            prep(d)
        results.append(run_probe(probe, d, WHO[who]))
    return results[0], results[1]


@pytest.mark.parametrize("who", list(WHO))
@pytest.mark.parametrize("probe", ["owners", "times", "names", "dir_links", "sparse", "links",
                                   "exchange"])
def test_behaves_as_a_local_file_system(setup, probe, who):
    mount, plain = both(setup, probe, who)
    assert mount == plain


def test_another_user_meets_the_permissions_the_owner_chose(setup):
    for where in ("mount", "plain"):
        d = room(setup[where], "foreign")
        run_probe("owners", d, USER)
        os.chmod(d, 0o755)  # /tmp-like, but the next user may not delete in it either
    mount = run_probe("foreign", os.path.join(setup["mount"], "foreign"), OTHER)
    plain = run_probe("foreign", os.path.join(setup["plain"], "foreign"), OTHER)
    assert mount == plain
    assert mount["read"] == ["err", "EACCES"] and mount["chown"] == ["err", "EPERM"]


@pytest.mark.parametrize("who", list(WHO))
def test_fallocate_reserves_punches_and_zeroes(setup, who):
    h = setup["harness"]
    writes = h.call("info")["writes"]
    mount, plain = both(setup, "fallocate", who)
    assert mount == plain
    # posix_fallocate of 64 MiB was one request, not glibc's 16,384 one-byte writes
    assert h.call("info")["writes"] - writes < 10
    assert mount["posix_fallocate 64 MiB"] == [64 << 20, True]


@pytest.mark.parametrize("who", list(WHO))
def test_extended_attributes(setup, who):
    mount, plain = both(setup, "xattrs", who)
    assert mount == plain
    f = os.path.join(room(setup["mount"], f"ns-{who}"), "f")
    with open(f, "wb"):
        pass
    for name in ("security.selinux", "trusted.x", "user.datamonfs.bundle"):
        with pytest.raises(OSError) as e:
            os.setxattr(f, name, b"1")
        assert e.value.errno == errno.EOPNOTSUPP, name
    with pytest.raises(OSError) as e:  # 64 KiB values, but not more than 64 KiB in all
        for i in range(3):
            os.setxattr(f, f"user.{i}", bytes(30000))
    assert e.value.errno == errno.ENOSPC
    assert sorted(os.listxattr(f)) == ["user.0", "user.1"]


@pytest.mark.parametrize("who", list(WHO))
def test_special_files_are_refused(setup, who):
    """EPERM for everyone (as upload refuses them), where a plain directory makes a FIFO
    and a socket for anyone, and a device node for root."""
    mount, plain = both(setup, "special", who)
    assert mount == {"fifo": ["err", "EPERM"], "char device": ["err", "EPERM"],
                     "socket": ["err", "EPERM"], "left": []}
    assert plain["fifo"] == plain["socket"] == ["ok", None]


def test_what_a_commit_records_and_what_the_mount_keeps(setup):
    """Bundles keep no owners and no atime, hard links as separate entries sharing their
    chunks, and attributes; the mount keeps owners and links after the commit."""
    h, repo, mp = setup["harness"], setup["repo"], setup["mount"]
    d = room(mp, "kept")
    run_probe("owners", d, USER)
    with open(os.path.join(d, "shared"), "wb") as f:
        f.write(b"linked content")
    os.link(os.path.join(d, "shared"), os.path.join(d, "second"))
    os.setxattr(os.path.join(d, "shared"), "user.tag", b"t")
    os.utime(os.path.join(d, "shared"), ns=(7, 8_000_000_000))
    before = {n: os.lstat(os.path.join(d, n)) for n in os.listdir(d)}
    bundle = repo.get_bundle("r", h.commit("posix")["bundle"])
    kept = repo.trees.lookup(bundle.tree, "kept")
    shared, second = (repo.trees.lookup(kept.tree, n) for n in ("shared", "second"))
    assert shared.same_as(second) and shared.xattrs == (("user.tag", b"t"),)
    assert shared.chunks == second.chunks and shared.mtime == 8_000_000_000
    assert h.status() == []
    for name, st in before.items():  # owners and links outlive the commit in the mount
        now = os.lstat(os.path.join(d, name))
        assert (now.st_uid, now.st_gid, now.st_nlink, now.st_mode, now.st_ino) == (
            st.st_uid, st.st_gid, st.st_nlink, st.st_mode, st.st_ino), name
    assert os.stat(os.path.join(d, "mine")).st_uid == USER
    assert os.stat(os.path.join(d, "shared")).st_atime_ns == 7
    with open(os.path.join(d, "second"), "ab") as f:  # still one file
        f.write(b"!")
    with open(os.path.join(d, "shared"), "rb") as f:
        assert f.read() == b"linked content!"
    again = repo.get_bundle("r", h.commit("append")["bundle"])
    snap = tree_snapshot(repo, again.tree)
    assert snap["kept/shared"] == snap["kept/second"]
    assert h.commit("nothing")["bundle"] is None
