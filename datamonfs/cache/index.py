"""The cache directory: its files, its LMDB index, and the locks processes share.

    DIR/index/       LMDB environment: databases blocks, files, lru, meta, state, packs,
                     chunkloc; and the file `unsynced` while commits may not be on disk
                     yet (see below)
    DIR/blocks/ab/   block files named TOKEN (16 hex digits, ab its first two), a fresh
                     token per insert, never rewritten: each holds the chunks of one
                     insert (a chunk, or a run fetched with one request) one after another
    DIR/tmp/         block files being written; renamed into blocks/ once complete
    DIR/open.lock    flock, exclusive while a process opens the cache (and maybe repairs it)
    DIR/users.lock   flock, shared by every process that has the cache open
    DIR/fetch.lock   byte-range locks: one fetch of a chunk at a time across processes

A process that opens the cache while no other process has it open (it gets
users.lock exclusively) repairs what crashed processes left behind, see repair.py.
An index that is corrupt, truncated or not ours is rebuilt empty by such a
process; while other processes use it, opening fails with a ConfigError that
names the file and the fix.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import struct
import threading
from dataclasses import dataclass
from typing import NamedTuple

import lmdb
import xxhash

from ..errors import ConfigError

log = logging.getLogger("datamonfs.cache")

FORMAT = b"datamonfs-cache/3"
DBS = (b"blocks", b"files", b"lru", b"meta", b"state", b"packs", b"chunkloc")
MAP_SIZE = 1 << 36  # reserved address space; the file grows only with use
# LMDB maps lock.mdb and writes through the map: on a full disk, touching a hole
# in it is SIGBUS. Allocating it up front turns that into ENOSPC at open. Its
# size also sets the reader slots shared by all processes (about 2000 here).
LOCK_FILE_SIZE = 1 << 17

_RECORD = struct.Struct("<QQ8s")
_FILE = struct.Struct("<QQ")
PIECE = 16 << 10  # bytes checked by one digest: what a ranged read reads at least


class Record(NamedTuple):
    """A chunk's entry: blocks[ADDR] -> size, where it starts in its block file, the file's
    token, and an xxh3-64 digest of each PIECE of the chunk, so a read of any range
    checks what it reads."""

    size: int
    offset: int
    token: bytes
    digests: bytes  # 8 bytes per piece

    def pack(self) -> bytes:
        return _RECORD.pack(self.size, self.offset, self.token) + self.digests

    @classmethod
    def unpack(cls, raw: bytes) -> Record | None:
        if len(raw) < _RECORD.size:
            return None
        size, offset, token = _RECORD.unpack_from(raw)
        digests = raw[_RECORD.size:]
        return cls(size, offset, token, digests) if len(digests) == 8 * pieces(size) else None


class FileRecord(NamedTuple):
    """A block file's entry: files[TOKEN] -> its bytes, its last use (ns; the unit of
    recency and eviction is the file), and the addresses (32 bytes each) of the chunks
    indexed in it."""

    bytes: int
    used: int
    addrs: bytes

    def pack(self) -> bytes:
        return _FILE.pack(self.bytes, self.used) + self.addrs

    @classmethod
    def unpack(cls, raw: bytes) -> FileRecord | None:
        if len(raw) < _FILE.size or (len(raw) - _FILE.size) % 32:
            return None
        size, used = _FILE.unpack_from(raw)
        return cls(size, used, raw[_FILE.size:])

    def keys(self) -> list[bytes]:
        """The blocks keys of its chunks."""
        return [self.addrs[i:i + 32].hex().encode() for i in range(0, len(self.addrs), 32)]


def pieces(size: int) -> int:
    return -(-size // PIECE)


def piece_digests(data) -> bytes:
    view = memoryview(data)
    return b"".join(xxhash.xxh3_64_digest(view[o:o + PIECE]) for o in range(0, len(view), PIECE))


def lru_key(used: int, token: bytes) -> bytes:
    return used.to_bytes(8, "big") + token


@dataclass(frozen=True)
class CacheFiles:
    """Where each part of a cache directory is (see the module docstring)."""

    directory: str

    def __post_init__(self):
        object.__setattr__(self, "directory", os.path.abspath(self.directory))

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    @property
    def index_dir(self) -> str:
        return self.path("index")

    @property
    def blocks_dir(self) -> str:
        return self.path("blocks")

    @property
    def tmp_dir(self) -> str:
        return self.path("tmp")

    def block_path(self, token: bytes) -> str:
        name = token.hex()
        return os.path.join(self.blocks_dir, name[:2], name)

    def lock(self, name: str) -> int:
        return os.open(self.path(name), os.O_RDWR | os.O_CREAT, 0o600)


class CacheUnavailable(Exception):
    """The cache directory cannot be used (full, read-only, no permission): run uncached."""


class _Corrupt(Exception):
    pass


class CacheIndex:
    """The LMDB environment of one cache directory. Open it once per process."""

    def __init__(self, directory: str):
        """Open (creating, rebuilding or repairing as needed). A directory that cannot
        be used (full disk, read-only, no permission) gives an index that is not
        `available`, after one warning: datamonfs then reads without a cache."""
        self.files = CacheFiles(directory)
        self.directory = self.files.directory
        self.env: lmdb.Environment | None = None
        self.fetch_fd = self._users_fd = -1
        self._warned = False
        self._warn_lock = threading.Lock()
        try:
            self._open()
        except CacheUnavailable as e:
            self.close()
            self.unwritable(e)
        except BaseException:
            self.close()
            raise

    @property
    def available(self) -> bool:
        return self.env is not None

    def _open(self) -> None:
        try:
            for d in (self.files.index_dir, self.files.blocks_dir, self.files.tmp_dir):
                os.makedirs(d, exist_ok=True)
            self.fetch_fd = self.files.lock("fetch.lock")
            self._users_fd = self.files.lock("users.lock")
            gate = self.files.lock("open.lock")
        except OSError as e:
            raise CacheUnavailable(f"cannot use cache directory {self.directory}: {e.strerror or e}") from e
        try:
            fcntl.flock(gate, fcntl.LOCK_EX)
            self._open_locked()
        finally:
            os.close(gate)  # releases the gate

    def _open_locked(self) -> None:
        exclusive = _try_flock(self._users_fd, fcntl.LOCK_EX)
        if exclusive and self._written_before_a_crash():
            log.warning("the machine stopped while the cache index in %s had writes not yet on "
                        "disk; rebuilt the cache empty", self.files.index_dir)
            wipe(self.files)
        try:
            self._open_env()
        except _Corrupt as e:
            data = os.path.join(self.files.index_dir, "data.mdb")
            if not exclusive:
                raise ConfigError(
                    f"cache index {data} is corrupt or not a datamonfs cache ({e}); stop the "
                    "other datamonfs processes using it and run 'datamonfs cache clear'") from None
            log.warning("cache index %s was corrupt or not a datamonfs cache (%s); "
                        "rebuilt the cache empty", data, e)
            wipe(self.files)
            self._open_env()
        if exclusive:
            from .repair import repair

            try:
                repair(self)
            except (OSError, lmdb.Error) as e:
                raise CacheUnavailable(f"cannot repair the cache in {self.directory}: {e}") from e
        try:
            self._mark_unsynced()
        except OSError as e:
            raise CacheUnavailable(f"cannot use cache directory {self.directory}: {e.strerror or e}") from e
        fcntl.flock(self._users_fd, fcntl.LOCK_SH)  # others may open it now

    # Commits are not synced to disk one by one (a sync costs milliseconds under write
    # load, more than the rest of an insert). The index is synced when a process closes
    # it; until the last user has, a marker names the boot in which it was written. A
    # process that dies loses nothing (its writes are in the page cache); a machine that
    # stops may lose some, leaving an index LMDB might misread: that index is discarded.

    def _marker(self) -> str:
        return os.path.join(self.files.index_dir, "unsynced")

    def _marked_boot(self) -> str | None:
        try:
            with open(self._marker()) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def _written_before_a_crash(self) -> bool:
        return self._marked_boot() not in (None, _boot_id())

    def _mark_unsynced(self) -> None:
        if self._marked_boot() == _boot_id():
            return
        fd = os.open(self._marker(), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, _boot_id().encode())
            os.fsync(fd)  # on disk before any unsynced commit
        finally:
            os.close(fd)

    def _open_env(self) -> None:
        try:
            _preallocate(os.path.join(self.files.index_dir, "lock.mdb"), LOCK_FILE_SIZE)
        except OSError as e:
            raise CacheUnavailable(f"cannot use cache directory {self.directory}: {e.strerror or e}") from e
        try:
            env = lmdb.open(self.files.index_dir, map_size=MAP_SIZE, max_dbs=len(DBS), sync=False,
                            lock=True, max_spare_txns=4)
        except (lmdb.InvalidError, lmdb.CorruptedError, lmdb.VersionMismatchError) as e:
            raise _Corrupt(str(e)) from None
        except lmdb.Error as e:
            raise CacheUnavailable(f"cannot open cache index in {self.files.index_dir}: {e}") from None
        try:
            self._check_and_open_dbs(env)
        except BaseException:
            env.close()
            raise
        self.env = env

    def _check_and_open_dbs(self, env: lmdb.Environment) -> None:
        # LMDB trusts its file: reading a page past the end of a truncated one is SIGBUS.
        need = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
        have = os.path.getsize(os.path.join(self.files.index_dir, "data.mdb"))
        if have < need:
            raise _Corrupt(f"truncated to {have} of {need} bytes")
        with env.begin() as txn:
            names = [k for k, _ in txn.cursor()]
        if not set(names) <= set(DBS):
            raise _Corrupt("it holds databases datamonfs does not use")
        try:
            dbs = [env.open_db(name) for name in DBS]
            with env.begin(write=True) as txn:
                marker = txn.get(b"format", db=dbs[4])
                if marker is None and not names:
                    txn.put(b"format", FORMAT, db=dbs[4])
                elif marker != FORMAT:
                    raise _Corrupt(f"unknown format {marker!r}")
        except (lmdb.IncompatibleError, lmdb.CorruptedError) as e:
            raise _Corrupt(str(e)) from None
        except lmdb.Error as e:
            raise CacheUnavailable(f"cannot write cache index in {self.files.index_dir}: {e}") from None
        (self.blocks_db, self.files_db, self.lru_db, self.meta_db, self.state_db,
         self.packs_db, self.chunkloc_db) = dbs

    def counter(self, txn: lmdb.Transaction, name: bytes) -> int:
        raw = txn.get(name, db=self.state_db)
        return int.from_bytes(raw, "little") if raw else 0

    def set_counter(self, txn: lmdb.Transaction, name: bytes, value: int) -> None:
        txn.put(name, max(value, 0).to_bytes(8, "little"), db=self.state_db)

    def add_counter(self, txn: lmdb.Transaction, name: bytes, delta: int) -> None:
        if delta:
            self.set_counter(txn, name, self.counter(txn, name) + delta)

    def unwritable(self, err: object) -> None:
        """A write to the cache failed (full disk...): warn once per process, carry on uncached."""
        with self._warn_lock:
            if self._warned:
                return
            self._warned = True
        log.warning("cannot write to the cache in %s (%s); reading on without caching",
                    self.directory, err)

    def close(self) -> None:
        if self.env is not None:
            try:
                self.env.sync(True)
                synced = True
            except lmdb.Error:
                synced = False
            self.env.close()
            self.env = None
            if synced and _try_flock(self._users_fd, fcntl.LOCK_EX):  # the last user
                unlink_quietly(self._marker())
        for fd in (self._users_fd, self.fetch_fd):
            if fd >= 0:
                os.close(fd)  # releases this process's locks
        self._users_fd = self.fetch_fd = -1


def wipe(files: CacheFiles) -> None:
    """Remove the index and every cached block (the caller holds users.lock exclusively)."""
    for d in (files.index_dir, files.blocks_dir, files.tmp_dir):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d, exist_ok=True)


def clear_unused(directory: str) -> bool:
    """Wipe a cache that no process has open, without reading its index (which may be
    too damaged to open). False when another process has it open."""
    files = CacheFiles(directory)
    if not os.path.isdir(files.directory):
        return True
    gate, users = files.lock("open.lock"), files.lock("users.lock")
    try:
        fcntl.flock(gate, fcntl.LOCK_EX)
        if not _try_flock(users, fcntl.LOCK_EX):
            return False
        wipe(files)
        return True
    finally:
        os.close(users)
        os.close(gate)


def unlink_quietly(path: str) -> None:
    """Remove a file that may be gone already."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


def _try_flock(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _preallocate(path: str, size: int) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_size < size:
            os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)
