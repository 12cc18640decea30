"""The Store contract, run against a local directory and the GCS emulator."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from datamonfs.core.stores import open_store
from datamonfs.errors import ConfigError, KeyNotFound, StoreUnavailable


@pytest.fixture
def store(store_url):
    s = open_store(store_url)
    yield s
    s.close()


def test_put_get_range_exists_delete(store):
    assert not store.exists("a/b")
    store.put("a/b", b"0123456789")
    assert store.exists("a/b")
    assert store.get("a/b") == b"0123456789"
    assert store.get_range("a/b", 3, 4) == b"3456"
    store.put("a/b", b"new")
    assert store.get("a/b") == b"new"
    store.delete("a/b")
    assert not store.exists("a/b")
    with pytest.raises(KeyNotFound):
        store.get("a/b")
    with pytest.raises(KeyNotFound):
        store.delete("a/b")


def test_put_if_absent_never_overwrites(store):
    assert store.put_if_absent("x/y", b"first") is True
    assert store.put_if_absent("x/y", b"second") is False
    assert store.get("x/y") == b"first"


def test_list_by_prefix(store):
    for key in ("ref/r/branch/main/1", "ref/r/branch/main/2", "ref/r/branch/mainline/1",
                "ref/r/label/v1/1", "bundle/r/abcd", "bundle/r/abef"):
        store.put(key, b"x")
    assert sorted(store.list("ref/r/branch/main/")) == ["ref/r/branch/main/1", "ref/r/branch/main/2"]
    assert sorted(store.list("bundle/r/ab")) == ["bundle/r/abcd", "bundle/r/abef"]
    assert sorted(store.list("bundle/r/abc")) == ["bundle/r/abcd"]
    assert list(store.list("nothing/")) == []


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "a/./b", "sp ace", "a/\0"])
def test_invalid_keys_are_refused(store, key):
    with pytest.raises(ValueError):
        store.put(key, b"x")


def test_unsupported_url():
    with pytest.raises(ConfigError, match="unsupported store URL"):
        open_store("s3://bucket/x")
    with pytest.raises(ConfigError, match="names no bucket"):
        open_store("gs://")


def test_unreachable_gcs_is_store_unavailable(monkeypatch):
    from support.processes import free_port

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("DATAMONFS_STORE_TIMEOUT", "1")
    store = open_store("gs://nobucket/p")
    with pytest.raises(StoreUnavailable, match="gs://nobucket/p"):
        store.get("repo/x")


_PUTS = """
import sys
from datamonfs.core.stores.local import LocalStore
store = LocalStore(sys.argv[1])
store.put("refs/r/main", b"ref")
store.put_if_absent("pack/ab/p1", b"pack")
store.put("refs/r/main", b"ref again")
"""


def test_a_local_put_makes_its_name_durable(tmp_path):
    """After the rename or link that gives a key its name, the directory holding the name is
    fsynced, and so is the parent of every directory a put creates: a crash of the machine
    cannot keep a ref while losing the pack it names (seen by strace, the kernel's view)."""
    root = tmp_path / "store"
    trace = tmp_path / "trace"
    subprocess.run(["strace", "-f", "-y", "-qq", "-o", str(trace), "-e",
                    "trace=fsync,rename,renameat,renameat2,link,linkat,mkdir,mkdirat",
                    sys.executable, "-c", _PUTS, str(root)], check=True)
    calls = [line.split(None, 1)[1] if line[0].isdigit() else line
             for line in trace.read_text().splitlines()]

    def index(what: str, after: int = -1) -> int:
        return next(i for i, c in enumerate(calls) if i > after and what in c)

    for key, verb in (("refs/r/main", "rename"), ("pack/ab/p1", "link")):
        named = index(f'{root}/{key}"')
        assert calls[named].startswith(verb), calls[named]
        parent = os.path.dirname(f"{root}/{key}")
        assert calls[index(f"<{parent}>", named)].startswith("fsync("), calls[named:]
    for made in ("refs", "refs/r", "pack", "pack/ab"):  # each new directory's entry
        created = index(f'{root}/{made}"')
        parent = os.path.dirname(f"{root}/{made}")
        assert any(c.startswith("fsync(") and f"<{parent}>" in c for c in calls[created:])
    second = index(f'{root}/refs/r/main"', index(f'{root}/refs/r/main"'))
    assert any(c.startswith("fsync(") and f"<{root}/refs/r>" in c for c in calls[second:])
