"""The Store contract, run against a local directory and the GCS emulator."""

from __future__ import annotations

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
