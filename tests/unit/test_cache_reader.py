"""CachedChunkReader and FileReader over real stores (local directory and GCS emulator)."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.cache import CountingStore, MiB, block_files, cached_reader, store_chunks

from datamonfs.cache import CachedChunkReader, FileReader
from datamonfs.core.chunks import ChunkRef, ChunkStore
from datamonfs.core.stores import open_store
from datamonfs.errors import IntegrityError


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_concurrent_misses_fetch_once(tmp_path, store_url):
    ((addr, size, data),) = store_chunks(store_url, [MiB + 3])
    with cached_reader(tmp_path / "cache", store_url, delay=0.3) as (reader, counting):
        barrier = threading.Barrier(16)
        results = []

        def read() -> None:
            barrier.wait()
            results.append(reader.read_chunk(ChunkRef(addr, size)))

        threads = [threading.Thread(target=read) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [data] * 16
        assert counting.gets[ChunkStore.loose_key(addr)] == 1
        s = reader.cache.stats()
        assert (s["hits"] + s["misses"], s["bytes_fetched"], s["entries"]) == (16, size, 1)
        assert reader.read_chunk(ChunkRef(addr, size)) == data and counting.chunk_gets() == 1


@pytest.mark.expect_log('is corrupt')
def test_corrupt_cached_block_is_fetched_again(tmp_path, store_url):
    ((addr, size, data),) = store_chunks(store_url, [200_000])
    with cached_reader(tmp_path / "cache", store_url) as (reader, counting):
        assert reader.read_chunk(ChunkRef(addr, size)) == data
        (name,) = block_files(tmp_path / "cache")
        path = tmp_path / "cache" / "blocks" / name[:2] / name
        raw = bytearray(path.read_bytes())
        raw[1000] ^= 0xFF
        path.write_bytes(bytes(raw))
        assert reader.read_chunk(ChunkRef(addr, size)) == data
        assert counting.chunk_gets() == 2
        assert reader.read_chunk(ChunkRef(addr, size)) == data and counting.chunk_gets() == 2


def test_corrupt_chunk_in_store_is_an_error_and_not_cached(tmp_path, store_url):
    ((addr, size, data),) = store_chunks(store_url, [100_000])
    store = open_store(store_url)
    store.put(ChunkStore.loose_key(addr), data[:-1] + b"?")
    with cached_reader(tmp_path / "cache", store_url) as (reader, _):
        with pytest.raises(IntegrityError, match="corrupt"):
            reader.read_chunk(ChunkRef(addr, size))
        assert not reader.cache.contains(addr)
        store.put(ChunkStore.loose_key(addr), data)
        assert reader.read_chunk(ChunkRef(addr, size)) == data
        with pytest.raises(IntegrityError, match="not the 99999"):  # a chunk list that lies
            reader.read_chunk(ChunkRef(addr, size - 1))


def local_store(tmp_path) -> str:
    return "file://" + str(tmp_path / "store")


def test_fetches_run_in_parallel_up_to_the_bound(tmp_path):
    url = local_store(tmp_path)
    chunks = store_chunks(url, [50_000 + i for i in range(12)])
    with cached_reader(tmp_path / "cache", url, delay=0.2, workers=3) as (reader, counting):
        started = time.monotonic()
        reader.prefetch([ChunkRef(a, n) for a, n, _ in chunks])
        assert time.monotonic() - started < 0.1  # returns at once
        wait_for(lambda: reader.cache.stats()["entries"] == 12)
        assert counting.max_active == 3 and counting.chunk_gets() == 12
        assert all(reader.read_chunk(ChunkRef(a, n)) == d for a, n, d in chunks)
        assert counting.chunk_gets() == 12

    more = store_chunks(url, [60_000 + i for i in range(8)])
    with cached_reader(tmp_path / "cache2", url, delay=0.2, workers=2) as (reader, counting):
        threads = [threading.Thread(target=reader.read_chunk, args=(ChunkRef(a, n),)) for a, n, _ in more]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert counting.max_active == 2 and counting.chunk_gets() == 8


def test_bypass_reads_the_source_every_time(tmp_path):
    url = local_store(tmp_path)
    ((addr, size, data),) = store_chunks(url, [10_000])
    counting = CountingStore(open_store(url))
    reader = CachedChunkReader(None, ChunkStore(counting))
    try:
        assert reader.read_chunk(ChunkRef(addr, size)) == data and reader.read_chunk(ChunkRef(addr, size)) == data
        reader.prefetch([ChunkRef(addr, size)])
        assert counting.chunk_gets() == 2
    finally:
        reader.close()


@pytest.fixture(scope="module")
def one_file(tmp_path_factory):
    """A file of uneven chunks in a local store, and a cached reader over it."""
    tmp = tmp_path_factory.mktemp("file")
    url = local_store(tmp)
    chunks = store_chunks(url, [70_000, 1, 130_000, 4096, 250_000, 99_999, 180_000])
    with cached_reader(tmp / "cache", url) as (reader, _):
        yield reader, [ChunkRef(a, n) for a, n, _ in chunks], b"".join(d for _, _, d in chunks)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 760_000), st.integers(0, 400_000)), min_size=1, max_size=8))
def test_any_range_reads_the_right_bytes(one_file, reads):
    reader, chunks, content = one_file
    f = FileReader(reader, chunks)
    assert f.size == len(content)
    for offset, length in reads:
        assert f.read(offset, length) == content[offset:offset + length]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 760_000), st.integers(0, 400_000)), min_size=1, max_size=8))
def test_reads_on_the_event_loop_are_right_or_declined(one_file, reads):
    """read_nowait answers what read would, or None (then read runs in a thread)."""
    reader, chunks, content = one_file
    f = FileReader(reader, chunks)
    for offset, length in reads:
        got = f.read_nowait(offset, length)
        if got is None:
            got = f.read(offset, length)  # fetches, so the next try may be answered
        assert got == content[offset:offset + length]


def test_sequential_reads_grow_read_ahead_and_a_seek_resets_it(tmp_path):
    url = local_store(tmp_path)
    size = 256 << 10
    chunks = store_chunks(url, [size] * 64)
    listing = [ChunkRef(a, n) for a, n, _ in chunks]
    with cached_reader(tmp_path / "cache", url) as (reader, counting):
        f = FileReader(reader, listing)

        def fetched() -> set[int]:
            return {i for i, ref in enumerate(listing) if counting.gets[ChunkStore.loose_key(ref.addr)]}

        def settle(expected: set[int]) -> None:
            wait_for(lambda: fetched() >= expected)
            time.sleep(0.1)
            assert fetched() == expected

        # Each read covers one chunk; the window doubles: 1, 2, 4, 8 MiB (4, 8, 16, 32
        # chunks) ahead.
        for i, ahead in enumerate([4, 8, 16, 32]):
            assert f.read(i * size, size) == chunks[i][2]
            settle(set(range(i + 1 + ahead)))
        assert counting.chunk_gets() == 36  # each once: reads waited for read-ahead

        f.read(50 * size + 5, 10)  # a seek: no read-ahead
        settle(set(range(36)) | {50})
        f.read(50 * size + 15, 10)  # sequential again: 1 MiB ahead
        settle(set(range(36)) | set(range(50, 55)))
