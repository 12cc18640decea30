"""Store format 2 (issue 13), in-process: dedup without a request per chunk, ranged reads
of neighbouring chunks, the store contract for ranges, packs sealed by size and age, and
the locations a machine keeps of a store's packs."""

from __future__ import annotations

import random
import shutil
from collections import Counter

import pytest
from support.files import snapshot, write
from support.packs import MiB, folder, keys

from datamonfs.cache import LmdbLocations
from datamonfs.cache.index import CacheIndex
from datamonfs.core import export, ingest
from datamonfs.core.chunks import MAX_RUN, ChunkStore
from datamonfs.core.encoding import address
from datamonfs.core.packs import MemoryLocations, PackIndex
from datamonfs.core.repository import Author, Repository
from datamonfs.core.stores import open_store
from datamonfs.core.stores.base import ForwardingStore

ADA = Author("Ada", "ada@example.org")


class Counting(ForwardingStore):
    """A real store that counts every call, by kind and top-level key prefix."""

    def __init__(self, inner):
        super().__init__(inner)
        self.calls: Counter[tuple[str, str]] = Counter()

    def _note(self, op: str, key: str) -> None:
        self.calls[op, key.split("/", 1)[0]] += 1

    def get(self, key):
        self._note("get", key)
        return super().get(key)

    def get_range(self, key, start, length):
        self._note("get_range", key)
        return super().get_range(key, start, length)

    def put(self, key, data):
        self._note("put", key)
        return super().put(key, data)

    def put_if_absent(self, key, data):
        self._note("put_if_absent", key)
        return super().put_if_absent(key, data)

    def exists(self, key):
        self._note("exists", key)
        return super().exists(key)

    def list(self, prefix):
        self._note("list", prefix)
        return super().list(prefix)

    def of(self, *prefixes: str) -> int:
        return sum(n for (_, p), n in self.calls.items() if p in prefixes)



def test_the_store_contract_for_ranges_past_the_end(store_url):
    store = open_store(store_url)
    store.put("pack/aa/x", b"0123456789")
    assert store.get_range("pack/aa/x", 8, 10) == b"89"
    assert store.get_range("pack/aa/x", 10, 5) == b""
    assert store.get_range("pack/aa/x", 1000, 5) == b""


# -- dedup and ranged reads, counted --------------------------------------------------


def test_an_unchanged_folder_costs_no_request_per_chunk(tmp_path):
    """The issue's check: uploading an unchanged folder makes no per-chunk store request;
    a new machine (no locations yet) reads each pack index once."""
    url = "file://" + str(tmp_path / "store")
    src = tmp_path / "src"
    folder(src)
    Repository(open_store(url)).create_repo("r", "", ADA)
    first = Repository(Counting(open_store(url)))
    _, stats = ingest.upload(first, "r", str(src), "one", ADA)
    assert stats.chunks > 100 and stats.packs >= 1
    assert first.store.of("chunk", "pack") == stats.packs  # one put per pack, nothing else
    assert first.store.calls["put", "packidx"] == stats.packs

    first.store.calls.clear()
    _, stats = ingest.upload(first, "r", str(src), "two", ADA)  # same process: knows its packs
    assert stats.chunks_uploaded == 0
    assert first.store.of("chunk", "pack") == 0
    assert first.store.calls["get", "packidx"] == 0 and first.store.calls["list", "packidx"] == 1

    fresh = Repository(Counting(open_store(url)))  # another machine: reads the indexes once
    _, stats = ingest.upload(fresh, "r", str(src), "three", ADA)
    assert stats.chunks_uploaded == 0 and fresh.store.of("chunk", "pack") == 0
    assert fresh.store.calls["get", "packidx"] == len(keys(url, "packidx/"))
    # Requests left are per directory and per bundle, not per chunk.
    assert sum(fresh.store.calls.values()) < 40


def test_neighbouring_chunks_come_with_one_ranged_read(tmp_path):
    url = "file://" + str(tmp_path / "store")
    src = tmp_path / "src"
    data = random.Random(2).randbytes(12 * MiB)
    write(src, "big.bin", data)
    repo = Repository(open_store(url))
    repo.create_repo("r", "", ADA)
    bundle, stats = ingest.upload(repo, "r", str(src), "m", ADA)
    assert stats.chunks > 100
    reader = Repository(Counting(open_store(url)))
    export.download(reader, bundle, str(tmp_path / "out"))
    assert (tmp_path / "out" / "big.bin").read_bytes() == data
    ranged = reader.store.calls["get_range", "pack"]
    assert ranged <= -(-len(data) // MAX_RUN) + 2 < stats.chunks // 20


def test_small_files_are_downloaded_in_batches_of_many_files(tmp_path):
    """Each small file's chunk used to be sent for on its own as soon as it was queued."""
    url = "file://" + str(tmp_path / "store")
    rnd = random.Random(3)
    files = {f"d{i % 3}/f{i:04}": rnd.randbytes(rnd.randrange(1, 20_000)) for i in range(600)}
    for rel, data in files.items():
        write(tmp_path / "src", rel, data)
    repo = Repository(open_store(url))
    repo.create_repo("r", "", ADA)
    bundle, _ = ingest.upload(repo, "r", str(tmp_path / "src"), "m", ADA)
    reader = Repository(Counting(open_store(url)))
    export.download(reader, bundle, str(tmp_path / "out"))
    assert snapshot(tmp_path / "out") == snapshot(tmp_path / "src")
    total = sum(map(len, files.values()))
    # A batch per MAX_RUN of chunks, and one more where the writer caught up with each
    # directory's last chunks.
    assert reader.store.calls["get_range", "pack"] <= -(-total // MAX_RUN) + 3 + 3


# -- packs and locations, one part at a time -------------------------------------------


def test_packs_are_sealed_by_size_and_by_age(tmp_path, monkeypatch):
    from datamonfs.core import packs

    store = ChunkStore(open_store(str(tmp_path / "store")))
    stored = []
    monkeypatch.setattr(packs, "PACK_TARGET", 100)
    writer = packs.PackWriter(store, stored.append)
    refs = [writer.add(address(d), d) for d in (b"a" * 60, b"b" * 30, b"c" * 20, b"d" * 200)]
    writer.finish()
    assert sorted(len(i.chunks) for i in stored) == [1, 1, 2]  # 60+30 | 20 | 200 (longer: alone)
    assert refs[1].pack == refs[0].pack != refs[2].pack != refs[3].pack
    assert (refs[0].offset, refs[1].offset, refs[2].offset) == (0, 60, 0)
    for ref, data in zip(refs, (b"a" * 60, b"b" * 30, b"c" * 20, b"d" * 200)):
        assert store.read_chunk(ref) == data

    monkeypatch.setattr(packs, "PACK_TARGET", 1 << 30)
    monkeypatch.setattr(packs, "PACK_AGE", 0.0)  # every chunk waited too long: a pack each
    stored.clear()
    writer = packs.PackWriter(store, stored.append)
    for d in (b"e", b"f", b"g"):
        writer.add(address(d), d)
    writer.finish()
    assert len(stored) == 3


A, B = address(b"a"), address(b"b")
HIGH = PackIndex("f" * 64, ((A, 0, 1), (B, 1, 1)))
LOW = PackIndex("0" * 64, ((B, 0, 1),))


@pytest.fixture
def cache_index(tmp_path):
    index = CacheIndex(str(tmp_path / "cache"))
    yield index
    index.close()


def both_kinds(index: CacheIndex) -> tuple:
    """Locations in memory, and in the cache's LMDB for one store."""
    return MemoryLocations(), LmdbLocations(index, "file:///one")


def test_the_pack_with_the_smallest_id_wins_and_stores_do_not_mix(cache_index):
    for where in both_kinds(cache_index):
        where.add(HIGH)
        where.add(LOW)
        where.add(HIGH)  # read again: still the smallest
        assert where.find(B).pack == "0" * 64 and where.find(A).offset == 0
        assert where.unseen(["f" * 64, "0" * 64, "1" * 64]) == ["1" * 64]
    other = LmdbLocations(cache_index, "gs://two")
    assert other.find(A) is None and other.unseen(["f" * 64]) == ["f" * 64]


def test_packs_the_store_no_longer_lists_are_forgotten(cache_index):
    other = LmdbLocations(cache_index, "gs://two")
    other.add(LOW)
    for where in both_kinds(cache_index):
        where.add(HIGH)
        where.add(LOW)
        assert where.keep_only({"f" * 64, "0" * 64}) == 0
        assert where.keep_only({"f" * 64}) == 1
        # B was known in the forgotten pack only (one location a chunk): it is sent
        # again if met; A, in the pack left, is still found.
        assert where.find(B) is None and where.find(A).pack == "f" * 64
        assert where.unseen(["0" * 64]) == ["0" * 64]
        assert where.keep_only(set()) == 1
        assert where.find(A) is None and where.find(B) is None
    assert other.find(B).pack == "0" * 64  # another store's packs are its own


def test_a_store_made_anew_under_the_same_url_gets_every_chunk_again(tmp_path, cache_index):
    """The locations this machine kept of a store must not be named by new entries once
    the store no longer lists their packs (emptied and made anew, a pack removed)."""
    url = "file://" + str(tmp_path / "store")
    src = tmp_path / "src"
    folder(src)

    def repository() -> Repository:
        repo = Repository(open_store(url), locations=LmdbLocations(cache_index, url))
        repo.create_repo("r", "", ADA)
        return repo

    _, first = ingest.upload(repository(), "r", str(src), "one", ADA)
    shutil.rmtree(tmp_path / "store")
    repo = repository()
    bundle, again = ingest.upload(repo, "r", str(src), "again", ADA)
    assert again.bytes_uploaded == first.bytes_uploaded == again.bytes
    export.download(repo, bundle, str(tmp_path / "out"))
    assert snapshot(tmp_path / "out") == snapshot(src)

    # One pack removed (as a collector would): its chunks go again, the others' not.
    pack = keys(url, "packidx/")[0].rsplit("/", 1)[1]
    lost = len(PackIndex.parse(repo.store.get(ChunkStore.index_key(pack)), pack).chunks)
    repo.store.delete(ChunkStore.index_key(pack))
    repo.store.delete(ChunkStore.pack_key(pack))
    bundle, third = ingest.upload(repo, "r", str(src), "three", ADA, allow_empty=True)
    assert third.chunks_uploaded == lost
    export.download(repo, bundle, str(tmp_path / "out3"))
    assert snapshot(tmp_path / "out3") == snapshot(src)
