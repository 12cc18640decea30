"""Upload then download reproduces any folder; chunking dedups what did not change."""

from __future__ import annotations

import io
import os
import random
import shutil
import tempfile

import pytest
from support.files import snapshot, write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datamonfs.core import export, ingest, readahead
from datamonfs.core.chunks import MAX_CHUNK, MIN_CHUNK, V1, V2, WHOLE, cut
from datamonfs.core.diff import diff_trees
from datamonfs.core.repository import Author, Repository
from datamonfs.core.stores import open_store
from datamonfs.core import trees

ADA = Author("Ada", "ada@example.org")

names = st.text(st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)),
                min_size=1, max_size=12).filter(lambda n: n not in (".", "..") and len(n.encode()) < 200)
contents = st.one_of(st.binary(max_size=64), st.integers(0, 700_000).map(lambda n: random.Random(n).randbytes(n)))
folder = st.recursive(
    st.one_of(contents, st.just(None)),  # None: an empty directory
    lambda children: st.dictionaries(names, children, max_size=5),
    max_leaves=12)


def materialise(root: str, tree) -> None:
    os.makedirs(root, exist_ok=True)
    if not isinstance(tree, dict):
        return
    for name, value in tree.items():
        path = os.path.join(root, name)
        if isinstance(value, bytes):
            write(root, name, value)
        else:
            materialise(path, value if isinstance(value, dict) else {})


@pytest.fixture(scope="module")
def store_root():
    d = tempfile.mkdtemp()
    yield d
    shutil.rmtree(d)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=st.dictionaries(names, folder, max_size=6), link=st.booleans())
def test_any_folder_round_trips(store_root, tree, link):
    repo = Repository(open_store(store_root))
    if not repo.store.exists("repo/r"):
        repo.create_repo("r", "", ADA)
    with tempfile.TemporaryDirectory() as work:
        src = os.path.join(work, "src")
        materialise(src, tree)
        if link and tree:
            os.symlink(sorted(tree)[0], os.path.join(src, "zz-link"))
        bundle, stats = ingest.upload(repo, "r", src, "m", ADA)
        dest = os.path.join(work, "dest")
        export.download(repo, bundle, dest)
        assert snapshot(dest) == snapshot(src)
        again, stats2 = ingest.upload(repo, "r", src, "m", ADA)
        assert stats2.chunks_uploaded == 0 and again.tree == bundle.tree
        assert list(diff_trees(repo, bundle.tree, again.tree)) == []


def test_gcs_round_trip_with_paged_directory(store_url, tmp_path, monkeypatch):
    monkeypatch.setattr(trees, "PAGE_SIZE", 16)
    repo = Repository(open_store(store_url))
    repo.create_repo("r", "", ADA)
    src = tmp_path / "src"
    for i in range(50):
        write(src, f"many/f{i:03}", str(i).encode() * 10)
    write(src, "big.bin", random.Random(1).randbytes(20 * MAX_CHUNK))  # a chunk-list object
    bundle, _ = ingest.upload(repo, "r", str(src), "m", ADA)
    many = repo.trees.lookup(bundle.tree, "many")
    assert repo.trees.count(many.tree) == 50
    assert repo.trees.lookup(many.tree, "f037").size == 20
    assert repo.trees.lookup(many.tree, "f0370") is None
    assert repo.trees.lookup(bundle.tree, "big.bin").chunklist is not None
    export.download(repo, bundle, str(tmp_path / "dest"))
    assert snapshot(tmp_path / "dest") == snapshot(src)


def chunks_of(data: bytes) -> list[bytes]:
    return list(cut(io.BytesIO(data)))


def test_chunks_concatenate_to_the_input_and_respect_bounds():
    data = random.Random(7).randbytes(20 * MAX_CHUNK)
    pieces = chunks_of(data)
    assert b"".join(pieces) == data
    assert all(MIN_CHUNK <= len(p) <= MAX_CHUNK for p in pieces[:-1])


class _Trickle(io.RawIOBase):
    """A stream that returns fewer bytes than asked (as sockets and pipes do)."""

    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        out = self.data[self.at:self.at + min(n, 1 + self.at % 50_000)]
        self.at += len(out)
        return out


@pytest.mark.parametrize("cutting", [V2, V1], ids=["v2", "v1"])
def test_a_short_stream_cut_in_memory_is_cut_where_a_stream_is(cutting):
    """cut() reads a stream shorter than WHOLE at once and cuts it in memory; the chunks
    are those FastCDC's streaming cut gives, also when reads come back short."""
    rng = random.Random(10)
    for size in [0, 1, cutting.min, cutting.min + 1, 70_000, WHOLE - 1, WHOLE, WHOLE + 1,
                 3 * WHOLE, *(rng.randrange(1, 3 * WHOLE) for _ in range(8))]:
        data = rng.randbytes(size)
        streamed = [bytes(c.data) for c in cutting.chunker().cut_stream(io.BytesIO(data))]
        if size <= cutting.min:
            streamed = [data] if data else []
        assert [bytes(c) for c in cut(io.BytesIO(data), cutting)] == streamed, size
        assert [bytes(c) for c in cut(_Trickle(data), cutting)] == streamed, size


def test_files_read_ahead_upload_as_they_are_and_are_all_closed(tmp_path, monkeypatch):
    """The walk opens small files ahead of their turn, at most OPEN_AHEAD at once: with
    directories among many files, a file too large to open ahead and an empty one, the
    folder uploads as it is, and no file stays open."""
    monkeypatch.setattr(readahead, "OPEN_AHEAD", 7)
    most = []
    take = readahead.ReadAhead.take
    monkeypatch.setattr(readahead.ReadAhead, "take",
                        lambda self, path: most.append(len(self.opened)) or take(self, path))
    repo = Repository(open_store(str(tmp_path / "store")))
    repo.create_repo("r", "", ADA)
    src, rng = tmp_path / "src", random.Random(11)
    for i in range(150):
        write(src, f"f{i:03}", rng.randbytes(rng.randrange(0, 40_000)))
        if i % 50 == 0:
            write(src, f"f{i:03}-dir/inner{i}", rng.randbytes(100 + i))
    write(src, "f020-big", rng.randbytes(WHOLE + 5))
    write(src, "f021-empty", b"")
    before = set(os.listdir("/proc/self/fd"))
    bundle, stats = ingest.upload(repo, "r", str(src), "m", ADA)
    assert set(os.listdir("/proc/self/fd")) == before
    assert max(most) == 7 and stats.files == 155
    export.download(repo, bundle, str(tmp_path / "dest"))
    assert snapshot(tmp_path / "dest") == snapshot(src)


def test_insertion_near_the_start_changes_only_nearby_chunks():
    data = random.Random(8).randbytes(64 * 1024 * 1024)
    before = set(chunks_of(data))
    after = chunks_of(data[:1000] + b"inserted bytes" + data[1000:])
    new = [c for c in after if c not in before]
    assert len(new) <= 2 and sum(map(len, new)) <= 2 * MAX_CHUNK


def test_one_percent_changed_in_place_uploads_little(tmp_path):
    repo = Repository(open_store(str(tmp_path / "store")))
    repo.create_repo("r", "", ADA)
    rng = random.Random(9)
    data = bytearray(rng.randbytes(64 * 1024 * 1024))
    write(tmp_path / "src", "data.bin", bytes(data))
    _, first = ingest.upload(repo, "r", str(tmp_path / "src"), "v1", ADA)
    for _ in range(4):  # four scattered 1% edits... as 160 KiB writes in place
        at = rng.randrange(len(data) - 200_000)
        data[at:at + 160_000] = rng.randbytes(160_000)
    write(tmp_path / "src", "data.bin", bytes(data))
    _, second = ingest.upload(repo, "r", str(tmp_path / "src"), "v2", ADA)
    # each edit costs its own bytes and at most a chunk either side
    assert second.chunks_uploaded <= 4 * (160_000 // MIN_CHUNK + 3)
    assert second.bytes_uploaded <= 4 * (160_000 + 2 * MAX_CHUNK)
    assert second.bytes_uploaded < first.bytes_uploaded / 4
