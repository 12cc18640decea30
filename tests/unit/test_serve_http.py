"""Range parsing and URL path checks of datamonfs serve, with hypothesis (issue 17)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings, strategies as st

from datamonfs.errors import InvalidPath
from datamonfs.serve import ranges
from datamonfs.serve.paths import MAX_RAW_PATH, BadPath, bundle_path, check_raw_path

ETAG = '"ab"'


def test_range_grammar():
    assert ranges.parse_range("bytes=0-9", 100) == [(0, 10)]
    assert ranges.parse_range("bytes=-10", 100) == [(90, 100)]
    assert ranges.parse_range("bytes=-1000", 100) == [(0, 100)]
    assert ranges.parse_range("bytes=95-", 100) == [(95, 100)]
    assert ranges.parse_range("bytes=90-200", 100) == [(90, 100)]
    assert ranges.parse_range("BYTES = 0-0 , 5-5", 100) == [(0, 1), (5, 6)]  # units: any case
    assert ranges.parse_range("bytes=0-0, 5-5", 100) == [(0, 1), (5, 6)]
    assert ranges.parse_range("bytes=0-4,5-9,20-29,25-", 100) == [(0, 10), (20, 100)]
    assert ranges.parse_range("bytes=100-", 100) == []
    assert ranges.parse_range("bytes=-0", 100) == []
    assert ranges.parse_range("bytes=0-", 0) == []
    assert ranges.parse_range("bytes=-5", 0) == []
    for bad in ("bytes=5-1", "bytes=", "bytes=a-b", "bytes=1-2-3", "items=0-1", "0-1",
                "bytes=--1", "bytes=0-1,,", "bytes=" + "0-1," * 3000):
        assert ranges.parse_range(bad, 100) is None, bad


def test_plans():
    h = {"range": "bytes=0-1"}
    assert ranges.plan({}, 10, ETAG).status == 200
    assert ranges.plan({"if-none-match": ETAG, **h}, 10, ETAG).status == 304
    assert ranges.plan({"if-none-match": "*"}, 10, ETAG).status == 304
    assert ranges.plan({"if-none-match": '"zz"'}, 10, ETAG).status == 200
    assert ranges.plan(h, 10, ETAG) == ranges.Plan(206, ((0, 2),))
    assert ranges.plan({**h, "if-range": ETAG}, 10, ETAG).status == 206
    assert ranges.plan({**h, "if-range": '"old"'}, 10, ETAG).status == 200
    assert ranges.plan({**h, "if-range": "Wed, 21 Oct 2015 07:28:00 GMT"}, 10, ETAG).status == 200
    assert ranges.plan({"range": "bytes=20-"}, 10, ETAG).status == 416
    many = "bytes=" + ",".join(f"{2 * i}-{2 * i}" for i in range(ranges.MAX_RANGES + 1))
    assert ranges.plan({"range": many}, 1000, ETAG).status == 200


spec = st.one_of(
    st.tuples(st.integers(0, 300), st.none() | st.integers(0, 300)).map(
        lambda t: f"{t[0]}-{'' if t[1] is None else max(t[0], t[1])}"),
    st.integers(0, 300).map(lambda n: f"-{n}"))


@settings(max_examples=300, deadline=None)
@given(size=st.integers(0, 200), specs=st.lists(spec, min_size=1, max_size=8))
def test_ranges_stay_in_the_file_and_cover_what_was_asked(size, specs):
    got = ranges.parse_range("bytes=" + ",".join(specs), size)
    assert got is not None
    data = bytes(range(256))[:size]
    wanted = set()
    for s in specs:
        first, _, last = s.partition("-")
        if first == "":
            n = int(last)
            wanted |= set(range(max(size - n, 0), size)) if n else set()
        else:
            end = size if last == "" else min(int(last) + 1, size)
            wanted |= set(range(int(first), end))
    served = set()
    for i, (start, end) in enumerate(got):
        assert 0 <= start < end <= size
        if i:
            assert got[i - 1][1] < start  # sorted, merged, never overlapping or adjacent
        served |= set(range(start, end))
        assert data[start:end] == bytes(data[j] for j in range(start, end))
    assert served == wanted


BAD_RAW = [b"/a/../b", b"/a/%2e%2e/b", b"/a/%2E%2e", b"/a/./b", b"/a/%2e/b", b"/a%2fb",
           b"/a%2Fb", b"/a%5cb", b"/a\\b", b"/a//b", b"//a", b"/a%00b", b"/a/%0d%0a",
           b"/%ff", b"/a/%c0%ae%c0%ae/b", b"a/b", b"/a/\x7f"]


def test_raw_paths_refused():
    for raw in BAD_RAW:
        with pytest.raises(BadPath):
            check_raw_path(raw)
    with pytest.raises(BadPath) as e:
        check_raw_path(b"/" + b"a" * MAX_RAW_PATH)
    assert e.value.status == 414
    for ok in (b"/", b"/api/v1/repos/r/refs/v1~2/files/a%20b/c.csv", b"/a/",
               b"/a/%E2%82%AC/..b/b..", b"/a/...", "/é/ü".encode()):
        check_raw_path(ok)


def test_bundle_paths():
    assert bundle_path("") == "" and bundle_path("a/b/") == "a/b"
    for bad in ("a/../b", "..", "/a", "a/\x00", "x" * 256, "a/" * 300):
        with pytest.raises(InvalidPath):
            bundle_path(bad)


names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)


@settings(max_examples=300, deadline=None)
@given(st.lists(names, min_size=1, max_size=6))
def test_a_path_passes_both_checks_only_when_every_name_could_be_in_a_bundle(parts):
    raw = ("/api/v1/repos/r/refs/m/files/" + "/".join(quote(p, safe="") for p in parts)).encode()
    try:
        check_raw_path(raw)
        path = bundle_path("/".join(parts))
    except (BadPath, InvalidPath):
        assert any(p in (".", "..") or "/" in p or "\\" in p or
                   any(ord(c) < 0x20 or ord(c) == 0x7F for c in p) or
                   len(p.encode()) > 255 for p in parts)
        return
    assert path.split("/") == parts
