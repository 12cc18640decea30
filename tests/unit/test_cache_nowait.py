"""The event loop's reads of the block cache (read_into and get_range with nowait): the
right bytes when the page cache holds them, WouldBlock and nothing changed otherwise (a
block file out of memory in whole or in part, evicted, damaged), and the blocking read
after it doing what must be done."""

from __future__ import annotations

import logging
import os

import pytest
from support.cache import MiB, block_cache, block_files, chunk
from support.pagecache import only_head_in_memory, out_of_memory

from datamonfs.cache.nowait import WouldBlock

def refs_of(chunks):
    return [(addr, len(data)) for addr, data in chunks]


def block_path(tmp_path) -> str:
    (name,) = block_files(tmp_path)
    return os.path.join(tmp_path, "blocks", name[:2], name)


@pytest.fixture
def cached(tmp_path):
    """Three neighbouring chunks in one block file, as a fetched run leaves them."""
    chunks = [chunk(64 * 1024 + 11 * i, i) for i in range(3)]
    with block_cache(tmp_path) as cache:
        cache.put_many(chunks)
        yield cache, chunks, block_path(tmp_path)


def test_a_run_in_memory_is_read_on_the_loop_into_one_buffer(cached):
    cache, chunks, path = cached
    want = b"".join(data for _, data in chunks)
    buf = bytearray(len(want))
    assert cache.read_into(refs_of(chunks), buf, nowait=True)
    assert buf == want
    addr, data = chunks[1]
    assert cache.get_range(addr, 5, 20_000, len(data), nowait=True) == data[5:20_000]


def test_out_of_memory_would_block_then_a_thread_reads_it(cached):
    cache, chunks, path = cached
    buf = bytearray(sum(len(d) for _, d in chunks))
    out_of_memory(path)
    with pytest.raises(WouldBlock):
        cache.read_into(refs_of(chunks), buf, nowait=True)
    out_of_memory(path)
    with pytest.raises(WouldBlock):
        cache.get_range(chunks[0][0], 0, 100, len(chunks[0][1]), nowait=True)
    assert cache.read_into(refs_of(chunks), buf)  # blocking: from the disk
    assert buf == b"".join(data for _, data in chunks)


def test_a_file_partly_in_memory_would_block(cached):
    """The file leaves the page cache mid-read: its last chunk's pages are gone."""
    cache, chunks, path = cached
    buf = bytearray(sum(len(d) for _, d in chunks))
    only_head_in_memory(path, len(chunks[0][1]) + len(chunks[1][1]))
    with pytest.raises(WouldBlock):
        cache.read_into(refs_of(chunks), buf, nowait=True)
    buf2 = bytearray(len(chunks[0][1]))
    assert cache.read_into(refs_of(chunks[:1]), buf2, nowait=True)  # the part in memory
    assert buf2 == chunks[0][1]
    assert cache.read_into(refs_of(chunks), buf)
    assert buf == b"".join(data for _, data in chunks)


def test_an_evicted_file_would_block_and_the_thread_drops_its_entries(cached):
    cache, chunks, path = cached
    os.unlink(path)
    buf = bytearray(sum(len(d) for _, d in chunks))
    with pytest.raises(WouldBlock):
        cache.read_into(refs_of(chunks), buf, nowait=True)
    assert all(cache.contains(addr) for addr, _ in chunks)  # the loop changed nothing
    assert not cache.read_into(refs_of(chunks), buf)
    assert not any(cache.contains(addr) for addr, _ in chunks)


@pytest.mark.expect_log("is corrupt")
def test_a_damaged_file_is_never_served_from_memory(cached, caplog):
    cache, chunks, path = cached
    with open(path, "r+b") as f:  # through the page cache: what a nowait read would see
        f.seek(len(chunks[0][1]) + 100)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 1]))
    buf = bytearray(sum(len(d) for _, d in chunks))
    with caplog.at_level(logging.WARNING, "datamonfs.cache"):
        with pytest.raises(WouldBlock):
            cache.read_into(refs_of(chunks), buf, nowait=True)
        with pytest.raises(WouldBlock):
            cache.get_range(chunks[1][0], 0, 200, len(chunks[1][1]), nowait=True)
        assert caplog.text == ""  # the loop neither logs nor drops
        assert cache.contains(chunks[1][0])
        assert not cache.read_into(refs_of(chunks), buf)
    assert "is corrupt" in caplog.text
    assert not any(cache.contains(addr) for addr, _ in chunks)


def test_a_miss_would_block_on_the_loop_and_is_false_in_a_thread(tmp_path):
    addr, data = chunk(MiB, 9)
    with block_cache(tmp_path) as cache:
        with pytest.raises(WouldBlock):
            cache.read_into([(addr, len(data))], bytearray(len(data)), nowait=True)
        assert not cache.read_into([(addr, len(data))], bytearray(len(data)))
