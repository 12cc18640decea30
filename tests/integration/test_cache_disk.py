"""A cache directory on a full disk, and a corrupt, truncated or foreign index."""

from __future__ import annotations

import json
import logging
import os
import subprocess

import lmdb
import pytest
from support.cli import CLI
from support.files import snapshot, write
from support.cache import (MiB, block_cache, block_files, cached_reader, check_consistent,
                           chunk, store_chunks)

from datamonfs.cache import blocks
from datamonfs.cache.index import CacheIndex
from datamonfs.core.chunks import ChunkRef


@pytest.fixture
def small_fs(tmp_path):
    """An 8 MiB tmpfs, unmounted at the end."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=True)


def fill(directory) -> None:
    """Fill the file system of `directory` to the last byte."""
    with open(os.path.join(directory, "filler"), "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.expect_log('cannot write to the cache')
def test_disk_fills_up_while_reading(tmp_path, small_fs, caplog):
    url = "file://" + str(tmp_path / "store")
    chunks = store_chunks(url, [MiB + i for i in range(12)])  # 12 MiB onto 8 MiB of disk
    with caplog.at_level(logging.WARNING, "datamonfs.cache"):
        with cached_reader(small_fs / "cache", url) as (reader, counting):
            for _ in range(2):
                assert all(reader.read_chunk(ChunkRef(a, n)) == d for a, n, d in chunks)
            cached = reader.cache.stats()["entries"]
            assert 0 < cached < 12
            assert counting.chunk_gets() == 2 * 12 - cached  # the second pass hit what fit
    assert len(warnings_of(caplog)) == 1 and "No space left" in caplog.text
    victim = next(p for p in (small_fs / "cache" / "blocks").rglob("*") if p.is_file())
    victim.unlink()
    # Reopening repairs: the entry whose file went missing is dropped, the rest agrees.
    assert check_consistent(small_fs / "cache")["entries"] == cached - 1


@pytest.mark.expect_log('cannot write to the cache')
def test_cache_on_a_full_disk_reads_uncached(tmp_path, small_fs, caplog):
    url = "file://" + str(tmp_path / "store")
    chunks = store_chunks(url, [300_000, 400_000])
    fill(small_fs)
    with caplog.at_level(logging.WARNING, "datamonfs.cache"):
        with cached_reader(small_fs / "cache", url) as (reader, counting):
            assert not reader.cache.index.available
            for _ in range(2):
                assert all(reader.read_chunk(ChunkRef(a, n)) == d for a, n, d in chunks)
            assert counting.chunk_gets() == 4
            stats = reader.cache.stats()
            assert (stats["available"], stats["entries"], stats["misses"]) == (False, 0, 4)
    assert len(warnings_of(caplog)) == 1 and "No space left" in caplog.text


def test_download_with_the_cache_on_a_full_disk(tmp_path, small_fs):
    cli = CLI(str(tmp_path / "home"), "file://" + str(tmp_path / "store"))
    cli("config", "create", "--name", "Ada", "--email", "ada@example.org")
    data = tmp_path / "data"
    write(data, "a.bin", os.urandom(3 * MiB))
    write(data, "b.bin", os.urandom(MiB))
    cli("repo", "create", "r")
    cli("bundle", "upload", "r", str(data), "-m", "x")
    fill(small_fs)
    cli.env["DATAMONFS_CACHE_DIR"] = str(small_fs / "cache")
    r = cli("bundle", "download", "r", str(tmp_path / "out"))
    assert snapshot(tmp_path / "out") == snapshot(data)
    assert [line for line in r.err.splitlines() if "cannot write to the cache" in line] == [
        r.err.splitlines()[0]]
    assert len(r.err.splitlines()) == 2  # the warning and the summary


def test_default_limit_is_a_share_of_the_room_that_stays_put(small_fs):
    with block_cache(small_fs / "c") as cache:
        first = blocks.default_limit(cache.index)
        st = os.statvfs(small_fs)
        assert first == max(4 * MiB, int(st.f_bavail * st.f_frsize * 0.2))
        cache.put(*chunk(MiB, 99))
    with block_cache(small_fs / "c") as cache:
        assert cache.stats()["size"] == MiB
        assert abs(blocks.default_limit(cache.index) - first) <= 8192  # not shrunk by what it holds


@pytest.fixture
def cache_cli(tmp_path):
    cli = CLI(str(tmp_path / "home"), "file://" + str(tmp_path / "store"))
    cli.env["DATAMONFS_CACHE_DIR"] = str(tmp_path / "cache")
    cli("cache", "status")  # creates the cache
    return cli


def damage(kind: str, cache_dir) -> None:
    data = os.path.join(cache_dir, "index", "data.mdb")
    if kind == "garbage":
        with open(data, "wb") as f:
            f.write(os.urandom(65536))
    elif kind == "truncated":  # reading past the end of a truncated map would be SIGBUS
        with block_cache(cache_dir) as cache:
            with cache.index.env.begin(write=True, db=cache.index.meta_db) as txn:
                for i in range(500):
                    txn.put(b"%064d" % i, os.urandom(1000))
        os.truncate(data, os.path.getsize(data) // 2)
    elif kind == "foreign":
        os.unlink(data)
        os.unlink(os.path.join(cache_dir, "index", "lock.mdb"))
        env = lmdb.open(os.path.join(cache_dir, "index"), max_dbs=2)
        env.open_db(b"somebody-elses")
        env.close()


@pytest.mark.parametrize("kind", ["garbage", "truncated", "foreign"])
def test_corrupt_index_is_rebuilt(tmp_path, cache_cli, kind):
    damage(kind, tmp_path / "cache")
    r = cache_cli("cache", "status", "--json")
    data = os.path.join(tmp_path / "cache", "index", "data.mdb")
    assert f"cache index {data} was corrupt or not a datamonfs cache" in r.err
    assert "rebuilt the cache empty" in r.err
    assert json.loads(r.out)["entries"] == 0 and json.loads(r.out)["available"]
    assert cache_cli("cache", "status").err == ""  # fixed for good


HOLD = """
import fcntl, os, sys, time
fd = os.open(os.path.join(sys.argv[1], "users.lock"), os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_SH)  # what every process with the cache open holds
print("holding", flush=True)
sys.stdin.read()
"""


def test_corrupt_index_in_use_is_a_clear_error(tmp_path, cache_cli, children):
    damage("garbage", tmp_path / "cache")
    holder = children(HOLD, str(tmp_path / "cache"), stdin=subprocess.PIPE)
    assert holder.stdout.readline() == "holding\n"
    data = os.path.join(tmp_path / "cache", "index", "data.mdb")
    for command in (["cache", "status"], ["cache", "clear"]):
        r = cache_cli(*command, expect=1)
        assert r.err == (f"datamonfs: error: cache index {data} is corrupt or not a datamonfs cache "
                         "(" + r.err.split("(", 1)[1].split(")", 1)[0] + "); stop the other datamonfs "
                         "processes using it and run 'datamonfs cache clear'\n")
    holder.stdin.close()
    holder.wait(timeout=10)
    assert cache_cli("cache", "clear").err.startswith("cleared the cache in")
    assert json.loads(cache_cli("cache", "status", "--json").out)["entries"] == 0


@pytest.mark.expect_log('cannot write to the cache')
def test_read_only_cache_directory_reads_uncached(small_fs, caplog):
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    with caplog.at_level(logging.WARNING, "datamonfs.cache"):
        index = CacheIndex(str(small_fs / "cache"))
        assert not index.available
        index.close()
    assert len(warnings_of(caplog)) == 1 and "Read-only file system" in caplog.text


@pytest.mark.expect_log('rebuilt the cache empty')
def test_index_written_before_a_machine_crash_is_discarded(tmp_path, caplog):
    marker = tmp_path / "index" / "unsynced"
    with block_cache(tmp_path) as cache:
        assert marker.read_text() == open("/proc/sys/kernel/random/boot_id").read().strip()
        cache.put(*chunk(MiB, 1))
    assert not marker.exists()  # the last user synced the index and said so
    with block_cache(tmp_path) as cache:
        assert cache.stats()["entries"] == 1
    marker.write_text("an-earlier-boot")  # as if the machine had stopped with the cache in use
    with caplog.at_level(logging.WARNING, "datamonfs.cache"):
        with block_cache(tmp_path) as cache:
            assert cache.stats()["entries"] == 0 and block_files(tmp_path) == {}
    assert "the machine stopped while the cache index" in caplog.text
