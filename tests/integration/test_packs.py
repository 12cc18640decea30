"""Store format 2 (issue 13), through the CLI and mounts: packs on both stores, killed
pack uploads, hostile packs, indexes and locations (exit 4, EIO in a mount, never wrong
bytes), and a store of format 1 written by the code of format 1."""

from __future__ import annotations

import errno
import io
import json
import os
import random
import signal
import subprocess
import sys

import pytest
from support.files import snapshot, write
from support.packs import MiB, bundle_record, folder, keys
from support.planting import Planter, T

from datamonfs.core.chunks import V1, ChunkStore, cut
from datamonfs.core.encoding import address, encode
from datamonfs.core.packs import PackIndex
from datamonfs.core.repository import Repository
from datamonfs.core.stores import open_store

# -- round trips ----------------------------------------------------------------------


def test_round_trip_in_packs_on_both_stores(cli, daemon, tmp_path):
    src = tmp_path / "src"
    files = folder(src)
    cli("repo", "create", "r")
    bundle_id = cli("bundle", "upload", "r", str(src), "-m", "v2", "--label", "v1").last_line
    assert bundle_record(cli.store_url, bundle_id)["v"] == 2
    assert keys(cli.store_url, "chunk/") == []  # format 2 writes no loose chunk
    packs, indexes = keys(cli.store_url, "pack/"), keys(cli.store_url, "packidx/")
    assert len(packs) == len(indexes) >= 1
    assert {k.split("/")[-1] for k in packs} == {k.split("/")[-1] for k in indexes}
    cli("bundle", "download", "r:v1", str(tmp_path / "out"))
    assert snapshot(tmp_path / "out") == snapshot(src)
    mp = daemon.mount("r:v1")
    for rel, data in files.items():
        with open(os.path.join(mp, rel), "rb") as f:
            assert f.read() == data, rel
    with open(os.path.join(mp, "big.bin"), "rb") as f:  # reads across chunk boundaries
        for offset in (0, 65_535, 1_000_003, 5 * MiB - 10):
            f.seek(offset)
            assert f.read(200_000) == files["big.bin"][offset:offset + 200_000]
    # An unchanged upload finds every chunk in the packs: nothing is sent again, and the
    # tree is the same (locations included), so no bundle is made.
    again = json.loads(cli("bundle", "upload", "r", str(src), "-m", "same", "--json").out)
    assert (again["bundle"], again["new_bundle"]) == (bundle_id, False)
    assert again["chunks_uploaded"] == again["packs"] == 0 < again["chunks"]


# -- a killed pack upload -------------------------------------------------------------

KILLED = """
import os, signal, sys
from datamonfs.core import ingest
from datamonfs.core.repository import Author, Repository
from datamonfs.core.stores import open_store
from datamonfs.core.stores.base import ForwardingStore

url, src, after = sys.argv[1:4]

class Dying(ForwardingStore):
    def put(self, key, data):
        super().put(key, data)
        if key.startswith(after):  # killed right after the first pack (or index) is stored
            os.kill(os.getpid(), signal.SIGKILL)

repo = Repository(Dying(open_store(url)))
ingest.upload(repo, "r", src, "killed", Author("Ada", "ada@example.org"))
"""


@pytest.mark.parametrize("after", ["pack/", "packidx/"])
def test_a_pack_upload_killed_leaves_no_bundle_and_a_rerun_sends_what_is_missing(
        cli, tmp_path, after):
    src = tmp_path / "src"
    rng = random.Random(3)
    for i in range(12):  # three packs at least
        write(src, f"f{i:02}.bin", rng.randbytes(8 * MiB))
    cli("repo", "create", "r")
    proc = subprocess.run([sys.executable, "-c", KILLED, cli.store_url, str(src), after],
                          env=cli.env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert keys(cli.store_url, "bundle/") == []
    packs = {k.rsplit("/", 1)[1] for k in keys(cli.store_url, "pack/")}
    indexed = {k.rsplit("/", 1)[1] for k in keys(cli.store_url, "packidx/")}
    assert packs and indexed <= packs and len(indexed) == (after == "packidx/")
    store = open_store(cli.store_url)
    known = sum(len(PackIndex.parse(store.get(ChunkStore.index_key(p)), p).chunks)
                for p in indexed)

    r = cli("bundle", "upload", "r", str(src), "-m", "again")
    uploaded, _, total = r.err.split(";")[1].split()[:3]  # "N of M chunks uploaded"
    assert int(uploaded) == int(total) - known
    bundle_id = r.last_line
    # No bundle names a pack without an index (the one the kill left is garbage).
    repo, named = Repository(store), set()
    for _, entry in repo.walk(repo.get_bundle("r", bundle_id)):
        if entry.kind == "file":
            named |= {c.pack for c in repo.trees.chunks(entry)}
    assert named <= {k.rsplit("/", 1)[1] for k in keys(cli.store_url, "packidx/")}
    cli("bundle", "download", "r", str(tmp_path / "out"))
    assert snapshot(tmp_path / "out") == snapshot(src)


# -- hostile packs, indexes and locations ---------------------------------------------


def _upload(cli, tmp_path, files: dict[str, bytes]) -> str:
    src = tmp_path / "src"
    for rel, data in files.items():
        write(src, rel, data)
    cli("repo", "create", "r", expect=None)
    return cli("bundle", "upload", "r", str(src), "-m", "m", "--label", "v1").last_line


def _pack_of(cli, name: str) -> tuple[str, int]:
    """(pack id, offset) of the first chunk of a file of bundle r:v1."""
    repo = Repository(open_store(cli.store_url))
    entry = repo.trees.lookup(repo.resolve("r:v1").tree, name)
    ref = repo.trees.chunks(entry)[0]
    return ref.pack, ref.offset


def test_a_corrupt_pack_range_is_detected_and_never_served(cli, daemon, tmp_path):
    data = random.Random(4).randbytes(400_000)
    _upload(cli, tmp_path, {"a.bin": data, "ok.txt": b"fine\n"})
    pack, offset = _pack_of(cli, "a.bin")
    store = open_store(cli.store_url)
    raw = bytearray(store.get(ChunkStore.pack_key(pack)))
    raw[offset + 1000] ^= 0xFF
    store.put(ChunkStore.pack_key(pack), bytes(raw))
    r = cli("bundle", "download", "r:v1", str(tmp_path / "out"), expect=4)
    assert r.err.startswith("datamonfs: error: a.bin: chunk ") and "corrupt" in r.err
    assert r.err.count("\n") == 1 and not (tmp_path / "out" / "a.bin").exists()
    mp = daemon.mount("r:v1")
    with pytest.raises(OSError) as e:
        with open(os.path.join(mp, "a.bin"), "rb") as f:
            f.read()
    assert e.value.errno == errno.EIO
    with open(os.path.join(mp, "ok.txt"), "rb") as f:
        assert f.read() == b"fine\n"
    status = json.loads(cli("cache", "status", "--json").out)
    assert status["bytes_fetched"] < len(data)  # the bad chunk was never cached


def _plant_index(cli, obj: dict, pack: str) -> str:
    key = ChunkStore.index_key(pack)
    open_store(cli.store_url).put(key, encode(obj))
    return key


@pytest.mark.parametrize("lie", ["gap", "overlap", "past_size", "other_pack", "not_json"])
def test_a_pack_index_that_lies_is_refused_with_exit_4(cli, tmp_path, lie):
    chunks = [address(b"x" * 10), address(b"y" * 10)]
    pack = "ab" * 32
    listed = {"gap": [[chunks[0], 0, 10], [chunks[1], 12, 10]],
              "overlap": [[chunks[0], 0, 10], [chunks[1], 5, 10]],
              "past_size": [[chunks[0], 0, 10], [chunks[1], 10, 10]],
              "other_pack": [[chunks[0], 0, 10], [chunks[1], 10, 10]],
              "not_json": []}[lie]
    size = {"past_size": 15}.get(lie, 20 if lie != "gap" else 22)
    obj = {"v": 2, "type": "packindex", "pack": "cd" * 32 if lie == "other_pack" else pack,
           "size": size, "chunks": listed}
    key = _plant_index(cli, obj, pack)
    if lie == "not_json":
        open_store(cli.store_url).put(key, b"{not json")
    (tmp_path / "src").mkdir()
    write(tmp_path / "src", "f.txt", b"hello")
    cli("repo", "create", "r")
    r = cli("bundle", "upload", "r", str(tmp_path / "src"), "-m", "m", expect=4)
    assert r.err.startswith("datamonfs: error: ") and r.err.count("\n") == 1
    assert pack[:12] in r.err
    assert keys(cli.store_url, "bundle/") == []


def test_a_location_that_lies_is_refused_and_fails_reads_with_eio(cli, daemon, tmp_path):
    """File entries planted with locations that name another chunk's bytes, a range past
    the pack's end, or a pack that does not exist."""
    cli("repo", "create", "r")
    planter = Planter(cli.store_url)
    good, other = b"good bytes", b"other!"
    pack = "ef" * 32
    planter.repo.store.put(ChunkStore.pack_key(pack), good + other)
    a, b = address(good), address(other)

    def entry(name: str, ref: list, size: int) -> list:
        return [name, "file", 0o644, T, size, {"chunks": [ref], "packs": [pack]}]

    entries = [["absent", "file", 0o644, T, 6, {"chunks": [[b, 6, 0, 10]], "packs": ["01" * 32]}],
               entry("fine", [a, 10, 0, 0], 10),
               entry("moved", [a, 10, 0, 6], 10),  # the bytes there are another chunk's
               entry("past", [b, 6, 0, 100], 6)]  # past the pack's end
    tree = planter.raw(encode({"v": 2, "type": "tree", "entries": entries}))
    planter.bundle(tree, 4, 32)
    for name, why in (("moved", "corrupt"), ("past", "corrupt"), ("absent", "missing")):
        r = cli("bundle", "download", "r:bad", str(tmp_path / name), "--filter", name,
                expect=4)
        assert why in r.err and r.err.count("\n") == 1, r.err
    cli("bundle", "download", "r:bad", str(tmp_path / "fine"), "--filter", "fine")
    assert (tmp_path / "fine" / "fine").read_bytes() == good
    cli("cache", "clear")
    mp = daemon.mount("r:bad")
    for name in ("moved", "past", "absent"):
        with pytest.raises(OSError) as e:
            with open(os.path.join(mp, name), "rb") as f:
                f.read()
        assert e.value.errno == errno.EIO, name
    # (Once the chunk is cached, by its address, "moved" reads its true bytes: whatever a
    # location says, what is served is what the address is the hash of.)
    with open(os.path.join(mp, "fine"), "rb") as f:
        assert f.read() == good


def test_a_location_in_a_format_1_tree_is_refused(cli, tmp_path):
    cli("repo", "create", "r")
    planter = Planter(cli.store_url)
    a = planter.chunk(b"hello")
    body = {"chunks": [[a, 5]], "packs": []}
    tree = planter.raw(encode({"v": 1, "type": "tree",
                               "entries": [["f", "file", 0o644, T, 5, body]]}))
    planter.bundle(tree, 1, 5)
    r = cli("bundle", "download", "r:bad", str(tmp_path / "out"), expect=4)
    assert "malformed chunk reference" in r.err or "chunk list is not a list" in r.err


# -- a store of format 1, written by the code of format 1 -----------------------------

FORMAT_1 = "daa7c2c"  # the last commit that wrote format 1


@pytest.fixture(scope="module")
def format_1_code(tmp_path_factory):
    """datamonfs as it was at FORMAT_1, from this repository's history."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    dest = tmp_path_factory.mktemp("format-1-code")
    archive = subprocess.run(["git", "-C", root, "archive", FORMAT_1, "datamonfs"],
                             capture_output=True)
    if archive.returncode:
        pytest.skip(f"the code of format 1 ({FORMAT_1}) is not in this checkout's history")
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return str(dest)


def test_a_store_of_format_1_is_read_and_committed_on_by_format_2(cli, daemon, tmp_path,
                                                                 format_1_code):
    src = tmp_path / "src"
    rng = random.Random(6)
    files = {"big.bin": rng.randbytes(6 * MiB), "small.txt": b"v1\n",
             "dir/inner.bin": rng.randbytes(700_000)}
    for rel, data in files.items():
        write(src, rel, data)
    # A cache of its own: format 1's code keeps cache format 2, which this one rebuilds.
    old_env = dict(cli.env, PYTHONPATH=format_1_code, XDG_CACHE_HOME=str(tmp_path / "old-cache"))
    # (run in the old code's directory: `python -c` puts the working directory first)
    old = [sys.executable, "-c", "from datamonfs.cli.main import main; main()"]
    for args in (["repo", "create", "r"], ["bundle", "upload", "r", str(src), "-m", "format 1",
                                           "--label", "v1"]):
        p = subprocess.run(old + args, env=old_env, capture_output=True, text=True,
                           cwd=format_1_code)
        assert p.returncode == 0, p.stderr
    v1_id = p.stdout.strip().splitlines()[-1]
    assert bundle_record(cli.store_url, v1_id)["v"] == 1
    assert keys(cli.store_url, "chunk/") and not keys(cli.store_url, "pack/")

    # Read by format 2: download, mount, diff.
    cli("bundle", "download", "r:v1", str(tmp_path / "out"))
    assert snapshot(tmp_path / "out") == snapshot(src)
    mp = daemon.mount("r:v1")
    with open(os.path.join(mp, "big.bin"), "rb") as f:
        f.seek(3 * MiB)
        assert f.read(MiB) == files["big.bin"][3 * MiB:4 * MiB]

    # A commit on it (writable mount) keeps what it does not change, loose chunks and
    # format-1 subtrees, re-cuts the changed file with format 1's sizes, packs what is new.
    rw = daemon.mountpoint()
    cli("mount", "--rw", "r:main", rw)
    with open(os.path.join(rw, "big.bin"), "r+b") as f:
        f.seek(2 * MiB)
        f.write(b"changed by format 2")
    out = cli("commit", rw, "-m", "format 2 on format 1")
    new_id = out.last_line
    record = bundle_record(cli.store_url, new_id)
    assert record["v"] == 2 and record["parents"] == [v1_id]
    repo = Repository(open_store(cli.store_url))
    old_tree, new_tree = repo.get_bundle("r", v1_id).tree, record["tree"]
    assert repo.trees.lookup(new_tree, "dir").tree == repo.trees.lookup(old_tree, "dir").tree
    assert repo.trees.lookup(new_tree, "small.txt") == repo.trees.lookup(old_tree, "small.txt")
    refs = repo.trees.chunks(repo.trees.lookup(new_tree, "big.bin"))
    loose, packed = [r for r in refs if r.pack is None], [r for r in refs if r.pack]
    assert len(loose) >= len(refs) - 3 and 1 <= len(packed) <= 2
    want = bytearray(files["big.bin"])
    want[2 * MiB:2 * MiB + 19] = b"changed by format 2"
    assert [r.content for r in refs] == [(address(c), len(c)) for c in cut(
        io.BytesIO(bytes(want)), V1)]
    assert [c["path"] for c in json.loads(cli("bundle", "diff", "r:v1", f"r:{new_id}", "--json").out)] \
        == ["big.bin"]
    cli("bundle", "download", f"r:{new_id}", str(tmp_path / "after"))
    assert (tmp_path / "after" / "big.bin").read_bytes() == bytes(want)

    # The code of format 1 still reads its bundle, and refuses the new one, asking to upgrade.
    p = subprocess.run(old + ["bundle", "download", "r:v1", str(tmp_path / "old")],
                       env=old_env, capture_output=True, text=True, cwd=format_1_code)
    assert p.returncode == 0, p.stderr
    p = subprocess.run(old + ["bundle", "get", f"r:{new_id}"], env=old_env, capture_output=True,
                       text=True, cwd=format_1_code)
    assert p.returncode == 4 and "upgrade datamonfs" in p.stderr


