"""Extended attributes through the CLI and the daemon: kept by upload, written by download
when the destination takes them (and counted when it does not), shown by read-only mounts
(tests/unit/test_xattrs.py: the entry's optional 7th element and its rules)."""

from __future__ import annotations

import errno
import os

import pytest

from datamonfs.core.commit import NewDir, NewFile, commit
from datamonfs.core.repository import Author, Repository
from datamonfs.core.stores import open_store

ADA = Author("Ada", "ada@example.org")


def make_source(root: str) -> None:
    os.makedirs(os.path.join(root, "dir"))
    for rel in ("plain", "tagged", "dir/inner"):
        with open(os.path.join(root, rel), "wb") as f:
            f.write(rel.encode())
    os.setxattr(os.path.join(root, "tagged"), "user.origin", b"sensor-7")
    os.setxattr(os.path.join(root, "tagged"), "user.bin", b"\x00\xff")
    os.setxattr(os.path.join(root, "dir"), "user.dir", b"d")
    os.setxattr(os.path.join(root, "plain"), "trusted.ignored", b"root only")
    os.symlink("plain", os.path.join(root, "link"))


def attrs_of(path: str) -> dict:
    return {n: os.getxattr(path, n, follow_symlinks=False)
            for n in os.listxattr(path, follow_symlinks=False) if n.startswith("user.")}


def test_upload_keeps_user_attributes_and_download_writes_them(cli, tmp_path):
    src = str(tmp_path / "src")
    make_source(src)
    cli("repo", "create", "x")
    cli("bundle", "upload", "x", src, "-m", "attrs")
    out = str(tmp_path / "out")
    r = cli("bundle", "download", "x", out)
    assert "warning" not in r.err
    for rel in ("plain", "tagged", "dir", "dir/inner", "link"):
        assert attrs_of(os.path.join(out, rel)) == attrs_of(os.path.join(src, rel)), rel
    assert attrs_of(os.path.join(out, "tagged")) == {"user.origin": b"sensor-7",
                                                     "user.bin": b"\x00\xff"}
    assert "trusted.ignored" not in os.listxattr(os.path.join(out, "plain"))


def test_download_counts_attributes_the_destination_refuses(cli, tmp_path):
    """ext4 (without ea_inode) keeps one file's attributes in one block: 16 KiB is refused."""
    big = bytes(16 << 10)
    probe = tmp_path / "probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.big", big)
        pytest.skip("this file system keeps 16 KiB attributes: nothing to refuse")
    except OSError as e:
        assert e.errno in (errno.ENOSPC, errno.E2BIG)
    # A bundle that a file system with larger attributes (XFS, a writable mount) gave.
    repo = Repository(open_store(cli.store_url))
    repo.create_repo("x", "", ADA)
    f = NewFile(0o644, 7, 4, lambda off, n: b"data"[off:off + n],
                xattrs=(("user.big", big), ("user.small", b"s")))
    commit(repo, "x", "main", None, NewDir(0o755, 0, None, lambda: [("f", f)]), "big", ADA)
    out = str(tmp_path / "out")
    r = cli("bundle", "download", "x", out)
    assert "1 extended attribute(s) not written" in r.err
    with open(os.path.join(out, "f"), "rb") as g:
        assert g.read() == b"data"
    assert attrs_of(os.path.join(out, "f")) == {"user.small": b"s"}


def test_read_only_mounts_show_each_entry_s_attributes(cli, daemon, tmp_path):
    src = str(tmp_path / "src")
    make_source(src)
    cli("repo", "create", "x")
    bundle = cli("bundle", "upload", "x", src, "-m", "attrs").last_line
    mp = daemon.mount("x")
    assert attrs_of(os.path.join(mp, "tagged")) == attrs_of(os.path.join(src, "tagged"))
    assert attrs_of(os.path.join(mp, "dir")) == {"user.dir": b"d"}
    assert os.listxattr(os.path.join(mp, "plain")) == []
    # what the mount says about itself: listed on its root only, answered everywhere
    assert set(os.listxattr(mp)) == {"user.datamonfs.bundle", "user.datamonfs.repo",
                                     "user.datamonfs.ref"}
    assert os.getxattr(os.path.join(mp, "tagged"), "user.datamonfs.bundle") == bundle.encode()
    for path, name in ((os.path.join(mp, "plain"), "user.origin"), (mp, "user.origin"),
                       (os.path.join(mp, "tagged"), "security.capability")):
        with pytest.raises(OSError) as e:
            os.getxattr(path, name)
        assert e.value.errno == errno.ENODATA
    with pytest.raises(OSError) as e:
        os.setxattr(os.path.join(mp, "plain"), "user.x", b"1")
    assert e.value.errno == errno.EROFS
