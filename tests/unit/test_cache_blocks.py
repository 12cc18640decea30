"""BlockCache and LmdbMetaCache over a real LMDB index in a temporary directory."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.cache import MiB, block_cache, block_files, check_consistent, chunk

from datamonfs.cache import LmdbMetaCache, blocks
from datamonfs.cache.index import CacheIndex
from datamonfs.core.chunks import LARGEST_CHUNK as MAX_CHUNK
from datamonfs.core.encoding import address
from datamonfs.errors import ConfigError, IntegrityError


def counts(cache) -> tuple:
    s = cache.stats()
    return s["entries"], s["size"], s["hits"], s["misses"], s["bytes_fetched"]


def test_put_get_and_counters_persist(tmp_path):
    a, data_a = chunk(MiB, 1)
    b, data_b = chunk(MiB + 7, 2)
    with block_cache(tmp_path) as cache:
        assert cache.get(a) is None
        cache.put(a, data_a)
        cache.put(b, data_b)
        cache.put(a, data_a)  # already there: fetched again, stored once
        assert cache.get(a) == data_a and cache.get(b) == data_b and cache.get(a) == data_a
        assert cache.contains(a) and not cache.contains(chunk(10, 3)[0])
        assert counts(cache) == (2, 2 * MiB + 7, 3, 1, 3 * MiB + 7)
    with block_cache(tmp_path) as cache:  # another open sees what the first one wrote
        assert counts(cache) == (2, 2 * MiB + 7, 3, 1, 3 * MiB + 7)
        assert cache.peek(b) == data_b
        assert counts(cache) == (2, 2 * MiB + 7, 3, 1, 3 * MiB + 7)  # peek counts nothing


def test_bound_and_lru_order(tmp_path):
    made = [chunk(MiB, i) for i in range(10)]
    with block_cache(tmp_path, limit=8 * MiB) as cache:
        for addr, data in made[:8]:
            cache.put(addr, data)
        assert cache.stats()["size"] == 8 * MiB  # exactly at the limit: nothing evicted
        assert cache.get(made[0][0]) and cache.get(made[2][0])  # now the most recent
        cache.put(*made[8])
        cache.put(*made[9])
        kept = [i for i, (addr, _) in enumerate(made) if cache.contains(addr)]
        assert kept == [0, 2, 4, 5, 6, 7, 8, 9]  # 1 and 3 were least recently used
        assert cache.stats()["size"] == 8 * MiB
        assert len(block_files(tmp_path)) == 8
    check_consistent(tmp_path)


def test_chunk_larger_than_limit_is_not_cached(tmp_path):
    addr, data = chunk(MAX_CHUNK + 1, 1)
    with block_cache(tmp_path, limit=MAX_CHUNK) as cache:
        cache.put(addr, data)
        assert cache.get(addr) is None and block_files(tmp_path) == {}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["put", "get"]), st.integers(0, 7)), max_size=20))
def test_eviction_matches_an_lru_model(ops):
    sizes = [MiB // 2, MiB, 3 * MiB // 2, 2 * MiB] * 2
    made = [chunk(sizes[i], i) for i in range(8)]
    model: list[int] = []  # least recently used first
    with tempfile.TemporaryDirectory() as d, block_cache(d, limit=4 * MiB) as cache:
        for op, i in ops:
            addr, data = made[i]
            if op == "get":
                assert (cache.get(addr) == data) if i in model else (cache.get(addr) is None)
                if i in model:
                    model.remove(i)
                    model.append(i)
            elif i not in model:
                cache.put(addr, data)
                model.append(i)
                while sum(sizes[j] for j in model) > 4 * MiB:
                    model.pop(0)
            else:
                cache.put(addr, data)  # present: not a use
            assert sorted(j for j in range(8) if cache.contains(made[j][0])) == sorted(model)
        assert cache.stats()["size"] == sum(sizes[j] for j in model)


def test_hits_do_not_write_until_the_flush_interval(tmp_path, monkeypatch):
    monkeypatch.setattr(blocks, "FLUSH_INTERVAL", 0.5)
    addr, data = chunk(MiB, 1)
    with block_cache(tmp_path) as cache:
        cache.put(addr, data)
        txn_id = cache.index.env.info()["last_txnid"]
        for _ in range(200):
            assert cache.get(addr) == data
        assert cache.index.env.info()["last_txnid"] == txn_id  # 200 hits, no write
        time.sleep(0.6)
        cache.get(addr)
        assert cache.index.env.info()["last_txnid"] == txn_id + 1  # one batched write
        assert cache.stats()["hits"] == 201


@pytest.mark.expect_log('is corrupt')
@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_damaged_block_is_dropped_not_served(tmp_path, caplog, damage):
    addr, data = chunk(MiB, 1)
    with block_cache(tmp_path) as cache:
        cache.put(addr, data)
        (name,) = block_files(tmp_path)
        path = os.path.join(tmp_path, "blocks", name[:2], name)
        if damage == "flip":
            with open(path, "r+b") as f:
                f.seek(12345)
                byte = f.read(1)
                f.seek(12345)
                f.write(bytes([byte[0] ^ 1]))
        elif damage == "truncate":
            os.truncate(path, MiB - 1)
        else:
            os.unlink(path)
        with caplog.at_level(logging.WARNING, "datamonfs.cache"):
            assert cache.get(addr) is None
        assert (damage == "delete") == (caplog.text == "")
        assert not cache.contains(addr) and block_files(tmp_path) == {}
        assert counts(cache) == (0, 0, 0, 1, MiB)
        cache.put(addr, data)
        assert cache.get(addr) == data


@pytest.mark.expect_log('is corrupt')
def test_every_range_read_checks_the_pieces_it_reads(tmp_path, caplog):
    """A block damaged after this process read it (and after the OS cached it) is still
    found by the next read of the damaged piece, and never served; reads elsewhere read
    only their own pieces."""
    addr, data = chunk(MiB, 1)
    with block_cache(tmp_path) as cache:
        cache.put(addr, data)
        assert cache.get_range(addr, 100, 4196) == data[100:4196]
        assert cache.get_range(addr, 40000, 40010) == data[40000:40010]
        (name,) = block_files(tmp_path)
        path = os.path.join(tmp_path, "blocks", name[:2], name)
        with open(path, "r+b") as f:
            f.seek(40005)
            f.write(bytes([data[40005] ^ 0xFF]))
        assert cache.get_range(addr, 0, 10) == data[:10]  # another piece: still good
        assert cache.get_range(addr, MiB - 10, MiB) == data[-10:]
        assert cache.get_range(addr, 5, 5) == b""
        with caplog.at_level(logging.WARNING, "datamonfs.cache"):
            assert cache.get_range(addr, 40000, 40010) is None  # the damaged piece
        assert "corrupt" in caplog.text and not cache.contains(addr)
        assert counts(cache)[2:4] == (5, 1)
        cache.put(addr, data)
        assert cache.get(addr) == data


def test_a_chunk_list_that_lies_about_a_size_is_refused(tmp_path):
    addr, data = chunk(MiB, 1)
    with block_cache(tmp_path) as cache:
        cache.put(addr, data)
        for call in (lambda: cache.get(addr, 3), lambda: cache.get_range(addr, 0, 3, 3),
                     lambda: cache.get(addr, MiB + 1)):
            with pytest.raises(IntegrityError, match=f"has {MiB} bytes"):
                call()
        assert cache.get(addr, MiB) == data  # the block itself is fine and stays


def test_readers_never_see_a_block_torn_away_by_eviction(tmp_path):
    """Readers race a writer whose inserts evict what they read: every read is
    either a miss or the exact bytes."""
    hot = [chunk(MiB, i) for i in range(4)]
    cold = [chunk(MiB, 100 + i) for i in range(40)]
    wrong = []
    with block_cache(tmp_path, limit=4 * MiB) as cache:
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                for addr, data in hot:
                    got = cache.get(addr)
                    if got is not None and got != data:
                        wrong.append(addr)

        readers = [threading.Thread(target=read) for _ in range(3)]
        for t in readers:
            t.start()
        try:
            for item in cold:
                for addr, data in hot:
                    cache.put(addr, data)
                cache.put(*item)
        finally:
            stop.set()
            for t in readers:
                t.join()
        assert wrong == []
        assert cache.stats()["hits"] > 0
    check_consistent(tmp_path)


def test_clear(tmp_path):
    made = [chunk(MiB, i) for i in range(3)]
    with block_cache(tmp_path) as cache:
        for addr, data in made:
            cache.put(addr, data)
            cache.get(addr)
        cache.clear()
        assert counts(cache) == (0, 0, 0, 0, 0)
        assert block_files(tmp_path) == {}
        assert cache.get(made[0][0]) is None
        cache.put(*made[0])
        assert cache.get(made[0][0]) == made[0][1]


def test_limit_smaller_than_a_chunk_is_refused(tmp_path):
    index = CacheIndex(str(tmp_path))
    try:
        with pytest.raises(ConfigError, match=f"at least {MAX_CHUNK} bytes"):
            blocks.BlockCache(index, MAX_CHUNK - 1)
        assert blocks.BlockCache(index, MAX_CHUNK).limit == MAX_CHUNK
    finally:
        index.close()


@pytest.mark.expect_log('is corrupt')
def test_metadata_cache_roundtrip_and_verification(tmp_path, caplog):
    data = b'{"v": 1, "type": "tree", "entries": []}'
    addr = address(data)
    other = address(b"something else")
    with block_cache(tmp_path) as cache:
        meta = LmdbMetaCache(cache.index)
        assert meta.get(addr) is None
        meta.put(addr, data)
        meta.put(addr, data)
        assert meta.get(addr) == data
        meta.put(other, data)  # bytes that do not match their address
        with caplog.at_level(logging.WARNING, "datamonfs.cache"):
            assert meta.get(other) is None
        assert "corrupt" in caplog.text
        s = cache.stats()
        assert (s["meta_entries"], s["meta_bytes"]) == (1, len(data))
        meta.clear()
        assert meta.get(addr) is None and cache.stats()["meta_bytes"] == 0
