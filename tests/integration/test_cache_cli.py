"""datamonfs cache status | prefetch | clear, and downloads through the cache, on both stores."""

from __future__ import annotations

import json
import os
import pty
import subprocess

import pytest
from support.cli import CLI, DATAMONFS
from support.files import snapshot, write

from datamonfs.core.chunks import cut
from datamonfs.core.encoding import address
from datamonfs.core.stores import open_store


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    write(root, "big/one.bin", os.urandom(3_000_000))
    write(root, "big/two.bin", os.urandom(2_000_000))
    write(root, "small/a.txt", b"hello\n")
    return root


def chunks_of(*paths) -> dict[str, int]:
    found = {}
    for path in paths:
        with open(path, "rb") as f:
            found.update({address(c): len(c) for c in cut(f)})
    return found


def status(cli) -> dict:
    return json.loads(cli("cache", "status", "--json").out)


def counters(cli) -> tuple:
    s = status(cli)
    return s["entries"], s["size"], s["hits"], s["misses"], s["bytes_fetched"]


@pytest.mark.parametrize("store_url", ["gcs"], indirect=True)  # a local store is read in place
def test_downloads_go_through_the_cache(cli, data, tmp_path):
    cli("repo", "create", "r")
    cli("bundle", "upload", "r", str(data), "-m", "x")
    chunks = chunks_of(data / "big/one.bin", data / "big/two.bin", data / "small/a.txt")
    n, total = len(chunks), sum(chunks.values())
    assert counters(cli) == (0, 0, 0, 0, 0)

    cli("bundle", "download", "r", str(tmp_path / "one"))
    assert counters(cli) == (n, total, 0, n, total)
    cli("bundle", "download", "r", str(tmp_path / "two"))
    assert counters(cli) == (n, total, n, n, total)
    cli("bundle", "download", "r", str(tmp_path / "three"), "--no-cache")
    assert counters(cli) == (n, total, n, n, total)
    for out in ("one", "two", "three"):
        assert snapshot(tmp_path / out) == snapshot(data)

    # Everything a download needs besides the bundle record and refs now comes from the cache.
    store = open_store(cli.store_url)
    for key in [*store.list("meta/"), *store.list("chunk/"), *store.list("pack/")]:
        store.delete(key)
    cli("bundle", "download", "r", str(tmp_path / "four"))
    assert snapshot(tmp_path / "four") == snapshot(data)
    r = cli("bundle", "download", "r", str(tmp_path / "five"), "--no-cache", expect=4)
    assert "missing from the store" in r.err


@pytest.mark.parametrize("store_url", ["local"], indirect=True)
def test_a_local_store_is_read_in_place(cli, data, tmp_path):
    """No chunk of a local store goes to the block cache (cache/in_place.py): downloads
    and prefetch leave it empty, and a damaged pack fails a download (exit 4)."""
    cli("repo", "create", "r")
    cli("bundle", "upload", "r", str(data), "-m", "x", "--label", "v1")
    cli("bundle", "download", "r", str(tmp_path / "one"))
    assert snapshot(tmp_path / "one") == snapshot(data)
    r = cli("cache", "prefetch", "r:v1")
    assert "is a local store: its files are read in place" in r.err
    assert counters(cli) == (0, 0, 0, 0, 0)
    [row] = json.loads(cli("cache", "status", "--json", "r:v1").out)["bundles"]
    assert row["fraction"] == 1.0  # every byte is on this machine (for node labels)

    store = open_store(cli.store_url)
    (key,) = [k for k in store.list("pack/") if os.path.getsize(store.path(k)) > 4 << 20]
    with open(store.path(key), "r+b") as f:  # one byte of a chunk of a big file
        f.seek(1 << 20)
        byte = f.read(1)
        f.seek(1 << 20)
        f.write(bytes([byte[0] ^ 1]))
    r = cli("bundle", "download", "r", str(tmp_path / "two"), expect=4)
    assert "is corrupt in the store" in r.err and r.err.count("\n") == 1, r.err


def test_listing_twice_reads_metadata_once(cli, data):
    cli("repo", "create", "r")
    cli("bundle", "upload", "r", str(data), "-m", "x")
    first = cli("bundle", "files", "r", "--json").out
    meta = status(cli)
    assert meta["meta_entries"] >= 3 and meta["meta_bytes"] > 0
    store = open_store(cli.store_url)
    for key in store.list("meta/"):
        store.delete(key)
    assert cli("bundle", "files", "r", "--json").out == first


@pytest.mark.parametrize("store_url", ["gcs"], indirect=True)  # a local store is read in place
def test_prefetch_prefix_then_clear(cli, data, tmp_path):
    cli("repo", "create", "r")
    cli("bundle", "upload", "r", str(data), "-m", "x", "--label", "v1")
    one = chunks_of(data / "big/one.bin")
    r = cli("cache", "prefetch", "r:v1", "--filter", "big/o*")
    assert r.err.splitlines()[-1].startswith("1 files, 2.9 MiB;")
    assert counters(cli) == (len(one), sum(one.values()), 0, 0, sum(one.values()))
    cli("cache", "prefetch", "r:v1", "--filter", "big/o*")  # already there: nothing fetched
    assert counters(cli) == (len(one), sum(one.values()), 0, 0, sum(one.values()))

    everything = chunks_of(data / "big/one.bin", data / "big/two.bin", data / "small/a.txt")
    cli("cache", "prefetch", "r:v1")
    assert counters(cli)[:2] == (len(everything), sum(everything.values()))

    blocks = tmp_path / "home" / "cache" / "datamonfs" / "blocks"
    assert 0 < sum(len(files) for _, _, files in os.walk(blocks)) <= len(everything)  # runs
    assert cli("cache", "clear").err.startswith("cleared the cache in")
    assert counters(cli) == (0, 0, 0, 0, 0)
    assert status(cli)["meta_entries"] == 0
    assert sum(len(files) for _, _, files in os.walk(blocks)) == 0


@pytest.fixture
def local_cli(tmp_path):
    cli = CLI(str(tmp_path / "home"), "file://" + str(tmp_path / "store"))
    cli("config", "create", "--name", "Ada", "--email", "ada@example.org")
    return cli


def test_cache_dir_and_size_settings(local_cli, tmp_path):
    cli = local_cli
    s = status(cli)
    assert s["directory"] == str(tmp_path / "home" / "cache" / "datamonfs")
    assert 4 << 20 <= s["limit"] <= 10 << 30

    cli.env["DATAMONFS_CACHE_DIR"] = str(tmp_path / "elsewhere")
    config = tmp_path / "home" / "config" / "datamonfs" / "config.toml"
    with open(config, "a") as f:
        f.write(f'cache_dir = "{tmp_path / "ignored"}"\ncache_size = 5000000\n')
    s = status(cli)
    assert (s["directory"], s["limit"]) == (str(tmp_path / "elsewhere"), 5_000_000)
    assert os.path.isdir(tmp_path / "elsewhere" / "index")
    assert not os.path.exists(tmp_path / "ignored")

    with open(config, "a") as f:
        f.write("cache_size = 1000\n")
    config.write_text(config.read_text().replace("cache_size = 5000000\n", ""))
    r = cli("cache", "status", expect=1)
    assert r.err == (f"datamonfs: error: config {config}: cache_size = 1000 is smaller than one "
                     "chunk; set it to at least 4194304 bytes (4 MiB), or remove it for the default\n")
    r = cli("bundle", "list", "r", expect=1)  # every command reads the config
    assert "cache_size = 1000 is smaller than one chunk" in r.err


@pytest.mark.parametrize("store_url", ["gcs"], indirect=True)  # a local store is read in place
def test_prefetch_shows_progress_on_a_terminal(cli, data):
    cli("repo", "create", "r")
    cli("bundle", "upload", "r", str(data), "-m", "x")
    master, slave = pty.openpty()
    try:
        proc = subprocess.run([DATAMONFS, "cache", "prefetch", "r"], env=cli.env, stderr=slave,
                              stdout=subprocess.PIPE, timeout=60)
        os.close(slave)
        shown = b""
        while True:
            try:
                piece = os.read(master, 65536)
            except OSError:  # EIO: the terminal is closed and drained
                break
            if not piece:
                break
            shown += piece
    finally:
        os.close(master)
    assert proc.returncode == 0
    assert b"prefetching" in shown and b"100%" in shown and b"3 files, 4.8 MiB" in shown


HOLD = """
import sys
from datamonfs.cache.index import CacheIndex
index = CacheIndex(sys.argv[1])  # another process using the cache, as the daemon would
print("open", flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("store_url", ["gcs"], indirect=True)  # a local store is read in place
def test_clear_while_another_process_uses_the_cache(cli, data, tmp_path, children):
    cli("repo", "create", "r")
    cli("bundle", "upload", "r", str(data), "-m", "x")
    cli("cache", "prefetch", "r")
    assert counters(cli)[0] > 0
    cache_dir = tmp_path / "home" / "cache" / "datamonfs"
    holder = children(HOLD, str(cache_dir), stdin=subprocess.PIPE)
    assert holder.stdout.readline() == "open\n"
    cli("cache", "clear")
    assert counters(cli) == (0, 0, 0, 0, 0) and status(cli)["meta_entries"] == 0
    assert sum(len(files) for _, _, files in os.walk(cache_dir / "blocks")) == 0
