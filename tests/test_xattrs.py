"""Extended attributes in bundles: the entry's optional 7th element (docs/FORMAT.md §5.3,
§6.7) parsed and refused as the rules say, kept by upload, written by download when the
destination takes them, shown by read-only mounts."""

from __future__ import annotations

import base64
import errno
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamonfs.core import rules
from datamonfs.core.commit import NewDir, NewFile, commit
from datamonfs.core.encoding import encode
from datamonfs.core.model import DIR, FILE, LINK, Entry, xattrs_to_obj
from datamonfs.core.repository import Author, Repository
from datamonfs.core.stores import open_store
from datamonfs.errors import IntegrityError

ADA = Author("Ada", "ada@example.org")

HELLO = "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f"
TREE = "a7b40ceb507bbe5b2ba81aacb90b971a90e62f5cdb731dd935c7cdb92a051420"

names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
                min_size=1, max_size=40).map(lambda t: "user." + t).filter(
    lambda n: not n.startswith("user.datamonfs.") and len(n.encode()) <= 255)
xattr_sets = st.dictionaries(names, st.binary(max_size=300), max_size=6).map(
    lambda d: tuple(sorted(d.items())))


def entry(kind: str, xattrs) -> Entry:
    if kind == FILE:
        return Entry("f", FILE, 0o644, 5, 5, chunks=((HELLO, 5),), xattrs=xattrs)
    if kind == DIR:
        return Entry("d", DIR, 0o755, 5, 0, tree=TREE, files=0, xattrs=xattrs)
    return Entry("l", LINK, 0o777, 5, 1, target="f")


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from([FILE, DIR]), xattrs=xattr_sets)
def test_entries_with_attributes_round_trip_through_the_canonical_encoding(kind, xattrs):
    e = entry(kind, xattrs)
    obj = e.to_obj()
    assert len(obj) == (7 if xattrs else 6)  # absent when empty: old bundles unchanged
    raw = json.loads(encode({"entries": [obj]}))["entries"][0]
    assert Entry.from_obj(raw, "test") == e


def _with(optional) -> list:
    return ["f", "file", 420, 5, 5, [[HELLO, 5]], optional]


HOSTILE = {
    "not an object": ["user.a"],
    "empty optional": {},
    "empty xattrs": {"xattrs": {}},
    "xattrs not an object": {"xattrs": [["user.a", "AA=="]]},
    "value not text": {"xattrs": {"user.a": 5}},
    "unpadded base64": {"xattrs": {"user.a": "AA"}},
    "base64 with a newline": {"xattrs": {"user.a": "AA==\n"}},
    "url-safe base64": {"xattrs": {"user.a": "-_8="}},
    "non-canonical padding bits": {"xattrs": {"user.a": "AB=="}},
    "security namespace": {"xattrs": {"security.capability": "AA=="}},
    "trusted namespace": {"xattrs": {"trusted.x": "AA=="}},
    "user. alone": {"xattrs": {"user.": "AA=="}},
    "reserved name": {"xattrs": {"user.datamonfs.bundle": "AA=="}},
    "name with NUL": {"xattrs": {"user.a\0b": "AA=="}},
    "name too long": {"xattrs": {"user." + "x" * 251: "AA=="}},
    "lone surrogate in a name": {"xattrs": {"user.\udc80": "AA=="}},
    "value too large": {"xattrs": {"user.a": base64.b64encode(bytes(65537)).decode()}},
    "all values too large": {"xattrs": {"user.a": base64.b64encode(bytes(40000)).decode(),
                                        "user.b": base64.b64encode(bytes(40000)).decode()}},
}


@pytest.mark.parametrize("why", list(HOSTILE))
def test_hostile_optional_fields_are_refused(why):
    with pytest.raises(IntegrityError):
        Entry.from_obj(_with(HOSTILE[why]), "hostile")


def test_a_symlink_with_attributes_and_an_eighth_element_are_refused():
    with pytest.raises(IntegrityError):
        Entry.from_obj(["l", "link", 511, 5, 1, "f", {"xattrs": {"user.a": "AA=="}}], "t")
    with pytest.raises(IntegrityError):
        Entry.from_obj(_with({"xattrs": {"user.a": "AA=="}}) + [{}], "t")


def test_unknown_optional_fields_are_ignored_and_limits_are_inclusive():
    e = Entry.from_obj(_with({"later": [1, 2]}), "t")
    assert e.xattrs == ()
    biggest = {"user.a": base64.b64encode(bytes(65536 - 6)).decode()}
    assert Entry.from_obj(_with({"xattrs": biggest}), "t").xattrs == (("user.a", bytes(65530)),)
    assert rules.xattr_name_problem("user." + "x" * 250) is None
    assert rules.xattr_name_problem("user." + "x" * 251).errno == errno.ERANGE
    assert rules.xattr_name_problem(b"security.selinux").errno == errno.EOPNOTSUPP
    assert rules.xattr_value_problem(bytes(65537)).errno == errno.E2BIG


def test_the_encoding_is_base64_of_the_bytes_sorted_by_name():
    e = entry(FILE, (("user.b", b"\xff"), ("user.a", b"")))
    assert xattrs_to_obj(tuple(sorted(e.xattrs))) == {"user.a": "", "user.b": "/w=="}
    assert encode({"x": e.to_obj()[6]}) == b'{"x":{"xattrs":{"user.a":"","user.b":"/w=="}}}'


# -- upload, download, read-only mounts -------------------------------------------------------


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
