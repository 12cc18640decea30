"""The object-store interface everything above the store sees.

A store is a flat key space. Keys are '/'-separated relative paths made by the
core (never by users), so each store may map them onto its medium directly.
"""

from __future__ import annotations

import abc
import os
import re
import threading
import time
from contextlib import contextmanager
from typing import Iterator

_KEY = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
_deadlines = threading.local()


def store_timeout() -> float:
    """Seconds a store call may take, retries included (DATAMONFS_STORE_TIMEOUT, default 60)."""
    try:
        return max(float(os.environ.get("DATAMONFS_STORE_TIMEOUT", "60")), 0.1)
    except ValueError:
        return 60.0


@contextmanager
def deadline(seconds: float | None = None) -> Iterator[float]:
    """Store calls this thread makes in the block end by one deadline, `seconds` (default:
    the store timeout) from now, however many calls and waits the block holds: a read
    that waits for another fetch of the same chunk and then fetches it itself still
    gives up in time. Nested blocks keep the earliest deadline."""
    at = time.monotonic() + (store_timeout() if seconds is None else seconds)
    outer = getattr(_deadlines, "at", None)
    _deadlines.at = at if outer is None else min(at, outer)
    try:
        yield _deadlines.at
    finally:
        _deadlines.at = outer


def time_left(default: float) -> float:
    """Seconds a call starting now may take: `default`, or less inside a `deadline` block."""
    at = getattr(_deadlines, "at", None)
    return default if at is None else min(default, at - time.monotonic())


def check_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key) or any(part in (".", "..") for part in key.split("/")):
        raise ValueError(f"invalid store key {key!r}")
    return key


class Store(abc.ABC):
    """get, ranged get, put, put-if-absent, exists, list by prefix, delete.

    Missing keys raise errors.KeyNotFound; an unreachable medium raises
    errors.StoreUnavailable. Implementations are safe to call from several
    threads at once.
    """

    url: str

    @abc.abstractmethod
    def get(self, key: str) -> bytes: ...

    @abc.abstractmethod
    def get_range(self, key: str, start: int, length: int) -> bytes: ...

    @abc.abstractmethod
    def put(self, key: str, data: bytes | memoryview) -> None:
        """Write atomically: readers see the old value or the whole new one. `data` may be
        a view of a buffer the caller reuses once put returns (a pack's), never kept."""

    @abc.abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Write unless the key exists; True when this call wrote it."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    def list(self, prefix: str) -> Iterator[str]:
        """Keys starting with `prefix` (a plain string prefix), in no promised order."""

    @abc.abstractmethod
    def delete(self, key: str) -> None: ...

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"


class ForwardingStore(Store):
    """Passes every call to an inner store; subclasses override what they observe or change
    (instrumentation, injected latency)."""

    def __init__(self, inner: Store):
        self.inner, self.url = inner, inner.url

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        return self.inner.get_range(key, start, length)

    def put(self, key: str, data: bytes | memoryview) -> None:
        self.inner.put(key, data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self.inner.put_if_absent(key, data)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list(self, prefix: str) -> Iterator[str]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def close(self) -> None:
        self.inner.close()
