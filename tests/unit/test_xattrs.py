"""Extended attributes in bundles: the entry's optional 7th element (docs/FORMAT.md §5.3,
§6.7) parsed and refused as the rules say (tests/integration/test_xattrs_cli.py: kept by
upload, written by download, shown by read-only mounts)."""

from __future__ import annotations

import base64
import errno
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamonfs.core import rules
from datamonfs.core.chunks import ChunkRef
from datamonfs.core.encoding import encode
from datamonfs.core.model import DIR, FILE, LINK, Entry, xattrs_to_obj
from datamonfs.errors import IntegrityError

HELLO = "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f"
TREE = "a7b40ceb507bbe5b2ba81aacb90b971a90e62f5cdb731dd935c7cdb92a051420"

names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
                min_size=1, max_size=40).map(lambda t: "user." + t).filter(
    lambda n: not n.startswith("user.datamonfs.") and len(n.encode()) <= 255)
xattr_sets = st.dictionaries(names, st.binary(max_size=300), max_size=6).map(
    lambda d: tuple(sorted(d.items())))


PACKED = "packed"  # a file whose chunk is in a pack (format 2): its location comes first


def entry(kind: str, xattrs) -> Entry:
    if kind == FILE:
        return Entry("f", FILE, 0o644, 5, 5, chunks=(ChunkRef(HELLO, 5),), xattrs=xattrs)
    if kind == PACKED:
        return Entry("f", FILE, 0o644, 5, 5, chunks=(ChunkRef(HELLO, 5, "aa" * 32, 7),),
                     xattrs=xattrs)
    if kind == DIR:
        return Entry("d", DIR, 0o755, 5, 0, tree=TREE, files=0, xattrs=xattrs)
    return Entry("l", LINK, 0o777, 5, 1, target="f")


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from([FILE, DIR, PACKED]), xattrs=xattr_sets)
def test_entries_with_attributes_round_trip_through_the_canonical_encoding(kind, xattrs):
    e = entry(kind, xattrs)
    obj = e.to_obj()
    assert len(obj) == (7 if xattrs else 6)  # absent when empty: old bundles unchanged
    raw = json.loads(encode({"entries": [obj]}))["entries"][0]
    assert Entry.from_obj(raw, "test", version=2) == e


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
