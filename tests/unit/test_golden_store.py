"""The on-store format, pinned: docs/FORMAT.md's test vectors, and the golden stores.

tests/data/golden-store/ was written once by the writers of format 1 and is kept as it is;
tests/data/golden-store-v2/ is that store plus bundles written by today's writers
(scripts/make_golden_store.py, format 2). Each has a JSON file saying what a reader must
find in it. Today's code must read both, and today's writers must write the second one
again byte for byte: a store written by an earlier version has to stay readable, and new
uploads have to deduplicate with what today's writers wrote.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import sys

import blake3
import pytest

from datamonfs.core import lineage
from datamonfs.core.chunks import V1, V2, ChunkStore, cut
from datamonfs.core.encoding import VERSION, address, encode, is_address
from datamonfs.core.model import xattrs_to_obj
from datamonfs.core.packs import PackIndex
from datamonfs.core.repository import BRANCH, LABEL, Repository
from datamonfs.core.stores.base import check_key
from datamonfs.core.stores.local import LocalStore

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data")
GOLDEN = os.path.join(DATA, "golden-store")
GOLDEN_V2 = os.path.join(DATA, "golden-store-v2")
STORES = {1: (GOLDEN, "golden-store.json"), 2: (GOLDEN_V2, "golden-store-v2.json")}
FORMAT_MD = os.path.join(ROOT, "docs", "FORMAT.md")

DRIFT = ("{what}\n\nThe on-store format has drifted from the golden store (format version "
         "{version}). If the change is intended: describe it in docs/FORMAT.md, bump "
         "encoding.VERSION if readers of existing stores would be affected, and regenerate "
         "with 'python scripts/make_golden_store.py'. If it is not: fix the code, since "
         "stores already written must stay readable and deduplicate with new uploads.")


def drift(what: str):
    pytest.fail(DRIFT.format(what=what, version=VERSION), pytrace=False)


def _script():
    path = os.path.join(ROOT, "scripts", "make_golden_store.py")
    spec = importlib.util.spec_from_file_location("make_golden_store", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", params=sorted(STORES), ids=lambda v: f"format{v}")
def version(request) -> int:
    return request.param


@pytest.fixture(scope="module")
def expected(version) -> dict:
    with open(os.path.join(DATA, STORES[version][1]), encoding="ascii") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def golden(version) -> Repository:
    return Repository(LocalStore(STORES[version][0], create=False))  # never writes


def _files(root: str) -> dict[str, bytes]:
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


# -- docs/FORMAT.md's test vectors ---------------------------------------------------

HELLO = "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f"
EMPTY_TREE = "a7b40ceb507bbe5b2ba81aacb90b971a90e62f5cdb731dd935c7cdb92a051420"
LEAF = "974959e839c1f8a81726fd380eb5b6208e4600d2e97d6e189869fa7d4dbe9166"
VECTORS = [  # (object, its canonical encoding, its address)
    ({"v": 1, "type": "tree", "entries": []},
     b'{"entries":[],"type":"tree","v":1}', EMPTY_TREE),
    ({"v": 1, "type": "chunks", "chunks": [[HELLO, 5]]},
     b'{"chunks":[["' + HELLO.encode() + b'",5]],"type":"chunks","v":1}',
     "dff81f882f32e3c3729a01b6b4e83209c0e0e0c8d79d36c41e429e8afb3dd22a"),
    ({"v": 1, "type": "tree", "entries": [
        ["\x01\t\"q\"\\\x7fé🙂", "file", 0o644, -1, 5, [[HELLO, 5]]],
        ["l", "link", 0o777, 0, 5, "./sub"],
        ["sub", "dir", 0o755, 1700000000000000000, 0, [EMPTY_TREE, 0]]]},
     b'{"entries":[["\\u0001\\t\\"q\\"\\\\\x7f\xc3\xa9\xf0\x9f\x99\x82","file",420,-1,5,[["'
     + HELLO.encode() + b'",5]]],["l","link",511,0,5,"./sub"],["sub","dir",493,'
     b'1700000000000000000,0,["' + EMPTY_TREE.encode() + b'",0]]],"type":"tree","v":1}',
     LEAF),
    ({"v": 1, "type": "bundle", "repo": "demo", "tree": LEAF, "parents": [],
      "message": "a/b: Ünï \"q\"\n", "author": {"name": "A", "email": "a@b"},
      "time": 1700000000000000000, "files": 2, "bytes": 5},
     b'{"author":{"email":"a@b","name":"A"},"bytes":5,"files":2,"message":"a/b: \xc3\x9cn'
     b'\xc3\xaf \\"q\\"\\n","parents":[],"repo":"demo","time":1700000000000000000,"tree":"'
     + LEAF.encode() + b'","type":"bundle","v":1}',
     "7c32efeb69d3fee9f600f6116f4cb2ae82829fa6547f99b9641a5e7e5a22fe83"),
    # Not a record: object keys sort by code point (U+FF5A before U+1F642, unlike UTF-16).
    ({"\uff5a": 1, "🙂": 2, "é": 3, "Z": 4, "a": 5},
     '{"Z":4,"a":5,"é":3,"ｚ":1,"🙂":2}'.encode(),
     "68fe12534cb184e59b05086699343d0a76eead2db94bbcaff2d9d7fbcc51e471"),
]
PACK = "aa" * 32
VECTORS_V2 = [  # format 2: a pack index, a chunks object and a tree naming packed chunks
    ({"v": 2, "type": "packindex", "pack": PACK, "size": 5, "chunks": [[HELLO, 0, 5]]},
     b'{"chunks":[["' + HELLO.encode() + b'",0,5]],"pack":"' + PACK.encode()
     + b'","size":5,"type":"packindex","v":2}',
     "5eb22750713276a72ff990b56a9ab283eefa7a45f0c8bd943858f65699702fba"),
    ({"v": 2, "type": "chunks", "chunks": [[HELLO, 5], [HELLO, 5, 0, 0]], "packs": [PACK]},
     b'{"chunks":[["' + HELLO.encode() + b'",5],["' + HELLO.encode() + b'",5,0,0]],"packs":["'
     + PACK.encode() + b'"],"type":"chunks","v":2}',
     "9ef5a7024112806417c1545fd4ec40a8b9771ff88cf136e64fd8988f26622a5a"),
    ({"v": 2, "type": "tree", "entries": [
        ["h", "file", 0o644, 0, 10, {"chunks": [[HELLO, 5, 0, 0], [HELLO, 5]], "packs": [PACK]}]]},
     b'{"entries":[["h","file",420,0,10,{"chunks":[["' + HELLO.encode() + b'",5,0,0],["'
     + HELLO.encode() + b'",5]],"packs":["' + PACK.encode() + b'"]}]],"type":"tree","v":2}',
     "fddb39e85459a36579acd33e9739213eecd6544a630497d978aa4d89590e9c76"),
]
RAW = [(b"", "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"),
       (b"hello", HELLO)]
CHUNKING_INPUT = (b"datamonfs chunking vector", 8 << 20)  # BLAKE3 XOF of this, 8 MiB
CHUNKING_SIZES = [1586618, 641639, 1203732, 1303085, 1141619, 653368, 1385851, 472696]  # V1
CHUNKING_V2 = (1 << 20, [80574, 111824, 121891, 50208, 59402, 21273, 26237, 72842, 84428,
                         82390, 68111, 86041, 99096, 84259])  # the first MiB, cut with V2


@pytest.mark.parametrize("obj,data,addr", VECTORS + VECTORS_V2,
                         ids=[a[:8] for _, _, a in VECTORS + VECTORS_V2])
def test_canonical_encoding_and_addresses_of_the_format_document(obj, data, addr):
    if encode(obj) != data:
        drift(f"docs/FORMAT.md §4.6: the canonical encoding of {obj!r:.200} is now\n  "
              f"{encode(obj)!r:.400}\nnot\n  {data!r:.400}")
    assert address(data) == addr


def test_raw_addresses_and_the_vectors_appear_in_the_format_document():
    for data, addr in RAW:
        assert address(data) == addr
    with open(FORMAT_MD, encoding="utf-8") as f:
        text = f.read()
    vectors = [a for _, a in RAW] + [a for _, _, a in VECTORS + VECTORS_V2]
    missing = [a for a in vectors if a not in text]
    assert not missing, f"docs/FORMAT.md lacks the test vectors {missing}"
    words = " ".join(text.split())
    assert " ".join(map(str, CHUNKING_SIZES)) in words
    assert " ".join(map(str, CHUNKING_V2[1])) in words


def test_the_vectors_are_records_a_reader_accepts(tmp_path):
    repo = Repository(LocalStore(str(tmp_path)))
    repo.store.put(ChunkStore.loose_key(HELLO), b"hello")
    for obj, _, addr in VECTORS[:3]:
        assert repo.objects.put(obj) == addr
    repo.store.put(f"bundle/demo/{VECTORS[3][2]}", VECTORS[3][1])
    bundle = repo.get_bundle("demo", VECTORS[3][2])
    walked = {p: e.kind for p, e in repo.walk(bundle)}
    assert walked == {"\x01\t\"q\"\\\x7fé🙂": "file", "l": "link", "sub": "dir"}
    # Format 2: the pack index is what the writers read, and the tree's file reads back.
    index = PackIndex.parse(VECTORS_V2[0][1], PACK)
    assert [tuple(r) for r in index.refs()] == [(HELLO, 5, PACK, 0)]
    repo.store.put(ChunkStore.pack_key(PACK), b"hello")
    assert repo.objects.put(VECTORS_V2[1][0]) == VECTORS_V2[1][2]
    tree = repo.objects.put(VECTORS_V2[2][0])
    (entry,) = repo.trees.entries(tree)
    assert b"".join(repo.chunks.read_chunks(repo.trees.chunks(entry))) == b"hellohello"


def test_chunking_vectors_of_the_format_document():
    data = blake3.blake3(CHUNKING_INPUT[0]).digest(length=CHUNKING_INPUT[1])
    assert [len(c) for c in cut(io.BytesIO(data), V1)] == CHUNKING_SIZES
    assert [len(c) for c in cut(io.BytesIO(data[:CHUNKING_V2[0]]), V2)] == CHUNKING_V2[1]


# -- the golden store, read by today's code --------------------------------------------

def test_every_key_is_of_the_layout_and_every_address_matches_its_bytes(version):
    files = _files(STORES[version][0])
    assert 40 < len(files) < 200
    for key, data in files.items():
        check_key(key)
        kind, *rest = key.split("/")
        if kind in ("chunk", "meta"):
            assert rest[0] == rest[1][:2] and address(data) == rest[1], key
        elif kind == "bundle":
            assert address(data) == rest[1], key
        elif kind == "lineage":  # lineage/IN-REPO/IN-ID/OUT-REPO/OUT-ID, empty (§2.3)
            assert len(rest) == 4 and is_address(rest[1]) and is_address(rest[3]), key
            assert data == b"", key
        elif kind == "packidx":
            index = PackIndex.parse(data, rest[1])
            pack = files[ChunkStore.pack_key(rest[1])]
            assert rest[0] == rest[1][:2] and index.size == len(pack), key
            assert all(address(pack[o:o + n]) == a for a, o, n in index.chunks), key
        else:
            assert kind in ("repo", "ref", "pack") and version >= 2 or kind in ("repo", "ref"), key


def test_every_ref_resolves_to_its_bundle(golden, expected, version):
    assert expected["format"] == version
    for ref, bundle_id in expected["refs"].items():
        assert golden.resolve(ref).id == bundle_id, ref
    for log, ids in expected["logs"].items():
        kind, name = log.split("/")
        assert [r.bundle for r in golden.ref_log(expected["repo"], kind, name)] == ids, log
    branches = ["attrs", "derived", "dev", "main"] + (["packed"] if version >= 2 else [])
    assert [r.name for r in golden.list_refs(expected["repo"], BRANCH)] == branches
    assert [r.name for r in golden.list_refs(expected["repo"], LABEL)] == ["v1"]
    assert [b.id for b in golden.list_bundles(expected["repo"])] == \
        [expected["bundles"][t]["id"] for t in ("F", "E", "D", "C", "B", "A")
         if t in expected["bundles"]]


def test_lineage_markers_name_what_was_made_from_each_bundle(golden, expected):
    """§2.3: the reverse index of `inputs`, read back as the lineage of bundle A."""
    repo = expected["repo"]
    for made_from, outputs in expected["lineage"].items():
        assert [list(k) for k in lineage.children(golden.store, repo, made_from)] == outputs
        graph = lineage.walk(golden.store, golden.get_bundle, golden.get_bundle(repo, made_from),
                             up=False)
        assert sorted(list(b) for a, b in graph.edges) == sorted(outputs)
    c = expected["bundles"]["C"]["id"]
    graph = lineage.walk(golden.store, golden.get_bundle, golden.get_bundle(repo, c), down=False)
    assert graph.edges == [((repo, expected["bundles"]["A"]["id"]), (repo, c))]


@pytest.mark.parametrize("tag", ["A", "B", "C", "D", "E", "F"])
def test_every_entry_and_every_byte_of_a_bundle(golden, expected, tag):
    if tag not in expected["bundles"]:
        pytest.skip(f"no bundle {tag} in format {expected['format']}")
    want = expected["bundles"][tag]
    b = golden.get_bundle(expected["repo"], want["id"])
    assert (b.tree, list(b.parents), b.time, b.files, b.bytes, b.message) == (
        want["tree"], want["parents"], want["time"], want["files"], want["bytes"],
        want["message"])
    # What it was made from (§5.5): C (format 1) and F (format 2) record it.
    assert b.provenance.to_obj() == {k: want[k] for k in ("inputs", "process") if k in want}
    seen = []
    for path, e in golden.walk(b):
        seen.append(path)
        w = want["entries"][path]
        assert (e.kind, e.mode, e.mtime, e.size) == (w["kind"], w["mode"], w["mtime"],
                                                     w["size"]), path
        if e.kind == "file":
            chunks = golden.trees.chunks(e)
            data = b"".join(golden.chunks.read_chunks(chunks))
            assert (address(data), len(chunks)) == (w["blake3"], w["chunks"]), path
            if "chunklist" in w or "loose" not in w:
                assert e.chunklist == w.get("chunklist"), path
            packs = {c.pack for c in chunks if c.pack}
            assert len(packs) == w.get("packs", 0), path
            assert sum(c.pack is None for c in chunks) == w.get("loose", len(chunks) - sum(
                c.pack is not None for c in chunks)), path
            assert xattrs_to_obj(e.xattrs) == w.get("xattrs", {}), path
        elif e.kind == "dir":
            pages = golden.trees.directory(e.tree).pages
            assert (e.tree, e.files, len(pages)) == (w["tree"], w["files"], w["pages"]), path
        else:
            assert e.target == w["target"], path
    # A walk is depth first in name order, names compared by code point.
    assert seen == _depth_first(want["entries"])


def _depth_first(paths) -> list[str]:
    return sorted(paths, key=lambda path: path.split("/"))


def test_lookups_in_the_paged_directory(golden, expected):
    names = expected["bundles"]["A"]["entries"]["names"]
    assert names["pages"] == 4
    for path in expected["bundles"]["A"]["entries"]:
        if path.startswith("names/") and path.count("/") == 1:
            assert golden.trees.lookup(names["tree"], path[6:]).name == path[6:]
    for absent in ["", "\x00", "Zeta0", "sub ", "\U0010ffff", "日"]:
        assert golden.trees.lookup(names["tree"], absent) is None


# -- the golden store, written again by today's code -----------------------------------

def test_the_writers_write_the_golden_store_again_byte_for_byte(tmp_path):
    with open(os.path.join(DATA, STORES[VERSION][1]), encoding="ascii") as f:
        expected = json.load(f)
    doc = _script().build(str(tmp_path / "store"), GOLDEN)
    have, want = _files(str(tmp_path / "store")), _files(GOLDEN_V2)
    problems = [f"missing {k}" for k in sorted(want.keys() - have.keys())]
    problems += [f"new {k}: {have[k][:200]!r}" for k in sorted(have.keys() - want.keys())]
    problems += [f"changed {k}:\n  was {want[k][:200]!r}\n  now {have[k][:200]!r}"
                 for k in sorted(want.keys() & have.keys()) if want[k] != have[k]]
    if problems:
        drift("Today's writers do not write the golden store again:\n"
              + "\n".join(problems[:12]) + ("\n..." if len(problems) > 12 else ""))
    if doc != expected:
        drift("The golden store is written again, but tests/data/golden-store-v2.json says "
              "something else about it.")
