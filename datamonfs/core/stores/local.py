"""file://PATH: a store in a local directory, one file per key.

Writes go through a temp file in PATH/.tmp (fsync, then rename or link into place, then
fsync of the directory that holds the new name, so that a ref never outlives, after a
crash of the machine, the objects it names).
A temp file is named after the boot, the writing process and its start time, plus
random bytes: so no two writers ever pick the same name, and a store opened later
can tell which temp files belong to writers that are gone (killed mid-write) and
remove them. Any failure of the medium (full disk, permissions) is the store's,
and says so: a StoreUnavailable naming the store.
"""

from __future__ import annotations

import errno
import os
import time
from typing import Iterator

from ...durable import sync_directory
from ...errors import KeyNotFound, StoreUnavailable
from .base import Store, check_key

STALE_FOREIGN = 24 * 3600  # temp files of another machine (a shared store) left this long


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip().replace("-", "")[:12]
    except OSError:
        return "noboot"


def _start_time(pid: int) -> str | None:
    """A process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


class LocalStore(Store):
    def __init__(self, root: str, create: bool = True):
        """`create`: make the directory when it is missing (only commands that write)."""
        self.root = os.path.abspath(root)
        self.url = "file://" + self.root
        self._tmp = os.path.join(self.root, ".tmp")
        self._boot = _boot_id()
        self._writer = (0, "")  # (pid, the prefix of its temp names)
        if not create and not os.path.isdir(self.root):
            # A mistyped path must not become an empty store that shows no repos.
            raise StoreUnavailable(
                f"store {self.url} does not exist (no directory {self.root}); check the store "
                "URL ('datamonfs config show'); commands that write create it")
        try:
            os.makedirs(self._tmp, exist_ok=True)
        except OSError as e:
            if not create and e.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
                return  # a store this user may only read: nothing to sweep
            raise StoreUnavailable(
                f"cannot use store directory {self.root}: {e.strerror or e}; "
                "check the path and its permissions") from e
        self._sweep()

    def failed(self, what: str, e: OSError) -> StoreUnavailable:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            return StoreUnavailable(f"the store {self.root} is full ({e.strerror}) while "
                                    f"writing {what}; free space on it and run the command again")
        return StoreUnavailable(f"store {self.root} failed on {what}: {e.strerror or e}; "
                                "check the directory and its permissions")

    def path(self, key: str) -> str:
        """The file holding `key` (for reading it in place: cache/in_place.py)."""
        return os.path.join(self.root, check_key(key))

    def get(self, key: str) -> bytes:
        try:
            with open(self.path(key), "rb") as f:
                return f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise KeyNotFound(key) from None
        except OSError as e:
            raise self.failed(key, e) from None

    def get_range(self, key: str, start: int, length: int) -> bytes:
        try:
            with open(self.path(key), "rb") as f:
                return os.pread(f.fileno(), length, start)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise KeyNotFound(key) from None
        except OSError as e:
            raise self.failed(key, e) from None

    def _temp_name(self) -> str:
        pid = os.getpid()
        if self._writer[0] != pid:  # a forked child is another writer
            self._writer = (pid, f"{self._boot}.{pid}.{_start_time(pid)}")
        return os.path.join(self._tmp, f"{self._writer[1]}.{os.urandom(6).hex()}")

    def _write_temp(self, data: bytes | memoryview) -> str:
        tmp = self._temp_name()
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
        """Make the directories above `path`, each one's entry made durable in its parent."""
        made, parent = [], os.path.dirname(path)
        while not os.path.isdir(parent):
            made.append(parent)
            parent = os.path.dirname(parent)
        if made:
            os.makedirs(made[0], exist_ok=True)
            for directory in reversed(made):
                sync_directory(os.path.dirname(directory))

    def put(self, key: str, data: bytes | memoryview) -> None:
        path = self.path(key)
        try:
            self._parent(path)
            tmp = self._write_temp(data)
            try:
                os.replace(tmp, path)
            except BaseException:
                _unlink_quietly(tmp)
                raise
            sync_directory(os.path.dirname(path))
        except OSError as e:
            raise self.failed(key, e) from None

    def put_if_absent(self, key: str, data: bytes) -> bool:
        path = self.path(key)
        if os.path.exists(path):
            return False
        try:
            self._parent(path)
            tmp = self._write_temp(data)
            try:
                os.link(tmp, path)  # fails if the key appeared meanwhile: no overwrite race
                sync_directory(os.path.dirname(path))
                return True
            except FileExistsError:
                return False
            finally:
                _unlink_quietly(tmp)
        except OSError as e:
            raise self.failed(key, e) from None

    def exists(self, key: str) -> bool:
        return os.path.isfile(self.path(key))

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
        except OSError as e:
            raise self.failed(f"listing {rel or '/'}", e) from None
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
            os.unlink(self.path(key))
        except FileNotFoundError:
            raise KeyNotFound(key) from None
        except OSError as e:
            raise self.failed(key, e) from None

    def _sweep(self) -> None:
        """Remove the temp files of writers that are gone: of this boot, whose process no
        longer runs (or is another process now); of another machine, once a day old."""
        try:
            names = os.listdir(self._tmp)
        except OSError:
            return
        for name in names:
            parts = name.split(".")
            path = os.path.join(self._tmp, name)
            if len(parts) == 4 and parts[0] == self._boot and parts[1].isdigit():
                if _start_time(int(parts[1])) == parts[2]:
                    continue  # its writer still runs
            else:
                try:
                    if time.time() - os.lstat(path).st_mtime < STALE_FOREIGN:
                        continue
                except OSError:
                    continue
            try:
                os.unlink(path)
            except OSError:
                pass  # not ours to remove, or gone already


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise
