"""Corrupt or hostile store content: downloads refuse it, name the entry, exit 4."""

from __future__ import annotations

import json
import os

import pytest
from support.files import write

from datamonfs.core.chunks import ChunkStore
from datamonfs.core.encoding import VERSION, address, encode, is_address
from datamonfs.core.model import Bundle
from datamonfs.core.objects import ObjectStore
from datamonfs.core.repository import Author, Repository
from datamonfs.core.stores import open_store


@pytest.fixture
def repository(cli):
    cli("repo", "create", "r")
    return Repository(open_store(cli.store_url))


def plant(repository: Repository, entries: list) -> str:
    """Store a bundle whose root tree holds `entries` (raw, unchecked) and label it 'bad'.
    The bundle's totals are what the entries claim."""
    tree = repository.objects.put({"v": VERSION, "type": "tree", "entries": entries})
    files = sum(e[5][1] if e[1] == "dir" else 1 for e in entries)
    size = sum(e[4] for e in entries if e[1] != "link")
    b = repository.write_bundle(Bundle("r", tree, (), "hostile", "Eve", "eve@x", 1, files, size))
    repository.append_ref("r", "label", "bad", b.id, Author("Eve", "eve@x"))
    return b.id


def chunk(repository: Repository, data: bytes) -> list:
    addr = address(data)
    repository.store.put(ChunkStore.loose_key(addr), data)
    return [[addr, len(data)]]


@pytest.mark.parametrize("name", ["..", ".", "a/b", "a\0b", ""])
def test_hostile_entry_names(cli, repository, tmp_path, name):
    plant(repository, [[name, "file", 0o644, 0, 1, chunk(repository, b"x")]])
    r = cli("bundle", "download", "r:bad", str(tmp_path / "out"), expect=4)
    assert "refusing entry named" in r.err
    assert not (tmp_path / "b").exists() and not (tmp_path / "out" / "a").exists()


@pytest.mark.parametrize("target", ["/etc/passwd", "../../escape", "a/../../x"])
def test_symlinks_escaping_the_destination(cli, repository, tmp_path, target):
    plant(repository, [["link", "link", 0o777, 0, len(target), target]])
    r = cli("bundle", "download", "r:bad", str(tmp_path / "out"), expect=4)
    assert "refusing symlink link" in r.err
    assert not os.path.lexists(tmp_path / "out" / "link")


def test_chunk_not_matching_its_address(cli, repository, tmp_path):
    good = chunk(repository, b"good bytes")
    repository.store.put(ChunkStore.loose_key(good[0][0]), b"evil bytes")
    plant(repository, [["f.txt", "file", 0o644, 0, 10, good]])
    r = cli("bundle", "download", "r:bad", str(tmp_path / "out"), expect=4)
    assert "f.txt" in r.err and "corrupt" in r.err
    assert os.listdir(tmp_path / "out") == []  # no file under its real name, no temp left


def test_missing_chunk_and_size_mismatch(cli, repository, tmp_path):
    plant(repository, [["f", "file", 0o644, 0, 5, [["ab" * 32, 5]]],
                       ["g", "file", 0o644, 0, 99, chunk(repository, b"x")]])
    r = cli("bundle", "download", "r:bad", str(tmp_path / "out"), expect=4)
    assert "do not add up" in r.err  # the tree itself is refused before any byte is written


def test_tampered_tree_and_bundle_records(cli, repository, tmp_path):
    bundle_id = plant(repository, [["f", "file", 0o644, 0, 1, chunk(repository, b"x")]])
    b = repository.get_bundle("r", bundle_id)
    repository.store.put(ObjectStore.key(b.tree), encode({"v": VERSION, "type": "tree", "entries": []}))
    r = cli("bundle", "download", "r:bad", str(tmp_path / "out"), expect=4)
    assert "corrupt" in r.err
    repository.store.put(f"bundle/r/{bundle_id}", b"{not json")
    r = cli("bundle", "get", "r:bad", expect=4)
    assert "corrupt" in r.err


@pytest.mark.parametrize("raw", [
    b"[]", b'{"v":1,"type":"tree"}', b'{"v":99,"type":"tree","entries":[]}',
    json.dumps({"v": 1, "type": "tree", "entries": [["f", "file", "rw", 0, 1, []]]}).encode(),
    json.dumps({"v": 1, "type": "tree", "entries": [["b", "dir", 0, 0, 0, ["zz", 0]]]}).encode(),
    json.dumps({"v": 1, "type": "tree", "entries": [["b", "fifo", 0, 0, 0, None]]}).encode(),
    json.dumps({"v": 1, "type": "tree", "entries": [["b", "link", 0, 0, 1, "x"],
                                                      ["a", "link", 0, 0, 1, "x"]]}).encode(),
])
def test_malformed_trees(cli, repository, tmp_path, raw):
    addr = address(raw)
    repository.store.put(ObjectStore.key(addr), raw)
    b = repository.write_bundle(Bundle("r", addr, (), "m", "Eve", "e@x", 1, 1, 1))
    r = cli("bundle", "files", f"r:{b.id}", expect=4)
    assert r.err.startswith("datamonfs: error: ") and r.err.count("\n") == 1


def test_upload_refuses_links_pointing_outside(cli, tmp_path):
    cli("repo", "create", "up")
    write(tmp_path / "d", "a", b"a")
    os.symlink("/etc/passwd", tmp_path / "d" / "abs")
    r = cli("bundle", "upload", "up", str(tmp_path / "d"), "-m", "x", expect=1)
    assert "symlink abs -> /etc/passwd: the target is absolute: it points outside the dataset" in r.err
    assert cli("bundle", "list", "up").out == ""


def test_decoders_refuse_what_the_format_forbids(tmp_path):
    """Found while writing docs/FORMAT.md: each was accepted, or failed with a TypeError."""
    from datamonfs.core.names import check_name
    from datamonfs.core.stores.base import check_key
    from datamonfs.errors import IntegrityError, InvalidName

    repo = Repository(open_store(str(tmp_path / "s")))
    with pytest.raises(InvalidName):
        check_name("x\n")
    with pytest.raises(ValueError):
        check_key("repo/x\n")
    assert not is_address(address(b"") + "\n")
    for raw in (b'{"pages":[],"type":"tree","v":1}', b'{"entries":[],"type":"tree","v":true}',
                json.dumps({"v": 1, "type": "tree",
                            "entries": [["l", "link", 0o777, 0, 99, "target"]]}).encode()):
        addr = address(raw)
        repo.store.put(ObjectStore.key(addr), raw)
        with pytest.raises(IntegrityError):
            list(repo.trees.entries(addr))
    eve = Author("Eve", "e@x")
    repo.create_repo("r", "", eve)
    b = repo.write_bundle(Bundle("r", address(b"t"), (), "m", "Eve", "e@x", 1, 0, 0))
    record = repo.append_ref("r", "label", "v1", b.id, eve)
    (key,) = repo.store.list("ref/r/label/v1/")
    moved = key.replace(f"{record.time:020d}", f"{record.time + 1:020d}")
    repo.store.put(moved, repo.store.get(key))  # a record under a key of another time
    with pytest.raises(IntegrityError, match="does not match its key"):
        repo.ref_head("r", "label", "v1")
