"""file://PATH: a store in a local directory, one file per key."""

from __future__ import annotations

import errno
import os
import itertools
from typing import Iterator

from ...errors import KeyNotFound, StoreUnavailable
from .base import Store, check_key


class LocalStore(Store):
    def __init__(self, root: str, create: bool = True):
        self.root = os.path.abspath(root)
        self.url = "file://" + self.root
        self._tmp = os.path.join(self.root, ".tmp")
        self._counter = itertools.count()  # next() on it is atomic under the GIL
        try:
            if create:
                os.makedirs(self._tmp, exist_ok=True)
            elif not os.path.isdir(self.root):
                raise FileNotFoundError(self.root)
        except OSError as e:
            raise StoreUnavailable(
                f"cannot use store directory {self.root}: {e.strerror or e}; "
                "check the path and its permissions") from e

    def _path(self, key: str) -> str:
        return os.path.join(self.root, check_key(key))

    def get(self, key: str) -> bytes:
        try:
            with open(self._path(key), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise KeyNotFound(key) from None
        except IsADirectoryError:
            raise KeyNotFound(key) from None

    def get_range(self, key: str, start: int, length: int) -> bytes:
        try:
            with open(self._path(key), "rb") as f:
                return os.pread(f.fileno(), length, start)
        except FileNotFoundError:
            raise KeyNotFound(key) from None

    def _write_temp(self, data: bytes) -> str:
        # Unique per process and call; O_EXCL guards against a stale file of a dead pid.
        tmp = os.path.join(self._tmp, f"{os.getpid()}-{next(self._counter)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        finally:
            os.close(fd)
        return tmp

    def _parent(self, path: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        self._parent(path)
        tmp = self._write_temp(data)
        try:
            os.replace(tmp, path)
        except BaseException:
            _unlink_quietly(tmp)
            raise

    def put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        if os.path.exists(path):
            return False
        self._parent(path)
        tmp = self._write_temp(data)
        try:
            os.link(tmp, path)  # fails if the key appeared meanwhile: no overwrite race
            return True
        except FileExistsError:
            return False
        finally:
            _unlink_quietly(tmp)

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._path(key))

    def list(self, prefix: str) -> Iterator[str]:
        # Walk only the deepest directory the prefix names completely.
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        top = os.path.join(self.root, base) if base else self.root
        yield from (k for k in self._walk(top, base) if k.startswith(prefix))

    def _walk(self, directory: str, rel: str) -> Iterator[str]:
        try:
            names = sorted(os.listdir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        for name in names:
            if not rel and name == ".tmp":
                continue
            key = f"{rel}/{name}" if rel else name
            path = os.path.join(directory, name)
            if os.path.isdir(path):
                yield from self._walk(path, key)
            else:
                yield key

    def delete(self, key: str) -> None:
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            raise KeyNotFound(key) from None


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise
