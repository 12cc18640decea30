"""BlockCache: chunk bytes in files under the cache directory, indexed by LMDB.

Inserting: the bytes go to a temp file, which is renamed to blocks/ab/ADDR.TOKEN,
and only then is the index entry committed, so a crash never leaves an entry
without its whole file. A file is never rewritten (each insert has a new token):
a reader that has opened one reads it whole even if it is evicted meanwhile.
The index keeps an xxh3-64 digest of every 16 KiB piece of a block. Every read, of a
whole chunk or of a range, reads the pieces it touches and checks each one, so a
block damaged at any time is dropped (and fetched again), never served, while a 4 KiB
random read costs one 16 KiB read and hash, not the whole block's.

Recency: a hit notes the time in memory. The notes, and the hit/miss counters,
reach LMDB in one write transaction with the next insert, or at most once per
FLUSH_INTERVAL, so hits do not queue on LMDB's single writer.

Eviction: the inserting process drops least recently used entries in the same
transaction until the total is within the limit, and unlinks their files after
the commit. Readers never wait for it (LMDB readers do not block on writers).
Commits are not synced one by one: see CacheIndex.
"""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
import threading
import time
from collections import Counter
from typing import Callable

import lmdb

from ..core.chunks import MAX_CHUNK
from ..core.config import check_cache_size
from ..core.stores.base import time_left
from ..errors import IntegrityError, StoreUnavailable
from .index import PIECE, CacheIndex, Record, log, lru_key, piece_digests, unlink_quietly

FLUSH_INTERVAL = 1.0  # seconds between recency/counter writes while only hits happen
DEFAULT_LIMIT = 10 << 30
FREE_SHARE = 0.2  # of the space available to the cache, by default
FETCH_WAIT = 60.0  # longest wait for another fetch of the same chunk (or the store deadline)


def default_limit(index: CacheIndex) -> int:
    """10 GiB, or 20% of the space the cache could have (free space plus what it
    holds already, so that the limit does not shrink as the cache fills), if smaller."""
    if index.env is None:
        return DEFAULT_LIMIT  # nothing is cached anyway
    with index.env.begin() as txn:
        used = index.counter(txn, b"size")
    st = os.statvfs(index.directory)
    room = (st.f_bavail * st.f_frsize + used) * FREE_SHARE
    return max(MAX_CHUNK, min(DEFAULT_LIMIT, int(room)))


class BlockCache:
    """The block cache of one directory; thread-safe and shared by processes."""

    def __init__(self, index: CacheIndex, limit: int):
        self.index = index
        self.limit = check_cache_size(limit, "cache limit")
        self._lock = threading.Lock()
        self._touched: dict[bytes, int] = {}
        self._counts: Counter[str] = Counter()
        self._flush_lock = threading.Lock()
        self._next_flush = time.monotonic() + FLUSH_INTERVAL
        self._fetching: dict[str, _Flight] = {}  # addr -> the load under way

    # -- reading -------------------------------------------------------------

    def get(self, addr: str, size: int | None = None) -> bytes | None:
        """The verified bytes of a cached chunk, or None (counted as a miss). With `size`
        (what a file's chunk list says), a cached chunk of another size is an
        IntegrityError: the list lies, whatever the cache holds."""
        data = self.peek(addr, size)
        self._count("hits" if data is not None else "misses")
        return data

    def peek(self, addr: str, size: int | None = None) -> bytes | None:
        """Like get, without counting a hit or a miss."""
        return self._read(addr, 0, None, size)

    def get_range(self, addr: str, start: int, end: int, size: int | None = None) -> bytes | None:
        """Bytes [start, end) of a cached chunk, or None (counted as a miss). Only the
        pieces holding the range are read, and each is checked against its digest."""
        data = self._read(addr, start, end, size)
        self._count("hits" if data is not None else "misses")
        return data

    def _read(self, addr: str, start: int, end: int | None, size: int | None) -> bytes | None:
        key = addr.encode()
        raw = self._entry(key)
        if raw is None:
            return None
        rec = Record.unpack(raw)
        data = None
        if rec is not None:
            if size is not None and rec.size != size:
                raise IntegrityError(f"chunk {addr} has {rec.size} bytes, not the {size} its "
                                     "file lists")
            end = rec.size if end is None else end
            if not 0 <= start <= end <= rec.size:
                raise ValueError(f"range [{start}, {end}) is outside chunk {addr}")
            data = self._read_pieces(addr, rec, start, end)
        if data is None:
            self._drop(key, raw)
            return None
        self._touch(key)
        return data

    def _read_pieces(self, addr: str, rec: Record, start: int, end: int) -> bytes | None:
        """Bytes [start, end) of a block file, read by whole pieces and checked; None
        when the file is gone (evicted since the lookup) or damaged."""
        if start == end:
            return b""
        first, last = start // PIECE, (end - 1) // PIECE
        offset = first * PIECE
        length = min((last + 1) * PIECE, rec.size) - offset
        path = self.index.files.block_path(addr, rec)
        data = _pread(path, offset, length)
        if data is None:
            return None
        if len(data) != length or piece_digests(data) != rec.digests[8 * first:8 * (last + 1)]:
            log.warning("cached block %s is corrupt (size or checksum mismatch); dropped it, "
                        "it will be fetched again", path)
            return None
        if (start, end) == (offset, offset + length):
            return data
        return data[start - offset:end - offset]

    def _touch(self, key: bytes) -> None:
        with self._lock:
            self._touched[key] = time.time_ns()
        if time.monotonic() >= self._next_flush:
            self._flush()

    def contains(self, addr: str) -> bool:
        return self._entry(addr.encode()) is not None

    def preload(self, addr: str) -> bool:
        """True when the chunk is cached; then the kernel is asked to start reading its
        file, so that a sequential reader finds the next blocks in memory, not on disk."""
        raw = self._entry(addr.encode())
        rec = Record.unpack(raw) if raw else None
        if rec is None:
            return False
        try:
            fd = os.open(self.index.files.block_path(addr, rec), os.O_RDONLY)
        except OSError:
            return True  # evicted meanwhile: the read will miss and fetch it
        try:
            os.posix_fadvise(fd, 0, rec.size, os.POSIX_FADV_WILLNEED)
        finally:
            os.close(fd)
        return True

    def _entry(self, key: bytes) -> bytes | None:
        env = self.index.env
        if env is None:
            return None
        with env.begin(db=self.index.blocks_db) as txn:
            return txn.get(key)

    def _drop(self, key: bytes, raw: bytes) -> None:
        """Remove an entry that failed to read, unless another process replaced it."""
        rec = Record.unpack(raw)
        try:
            with self.index.env.begin(write=True) as txn:
                if txn.get(key, db=self.index.blocks_db) != raw:
                    return
                txn.delete(key, db=self.index.blocks_db)
                if rec:
                    txn.delete(lru_key(rec.used, key), db=self.index.lru_db)
                    self.index.add_counter(txn, b"size", -rec.size)
        except lmdb.Error as e:
            self.index.unwritable(e)
            return
        if rec:
            unlink_quietly(self.index.files.block_path(key.decode(), rec))

    # -- writing -------------------------------------------------------------

    def put(self, addr: str, data: bytes) -> None:
        """Cache a chunk whose bytes the caller has verified against `addr`.

        Counted in bytes_fetched. On a full disk the chunk is simply not cached."""
        self._count("bytes_fetched", len(data))
        if self.index.env is None or len(data) > self.limit or self.contains(addr):
            return
        rec = Record(len(data), time.time_ns(), os.urandom(8), piece_digests(data))
        path = self.index.files.block_path(addr, rec)
        try:
            self._write_file(path, data)
        except OSError as e:
            self.index.unwritable(e)
            return
        key = addr.encode()
        stale = [path]  # unless its entry is committed below
        try:
            with self.index.env.begin(write=True) as txn:
                self._flush_into(txn)
                if txn.get(key, db=self.index.blocks_db) is None:  # else another process won
                    txn.put(key, rec.pack(), db=self.index.blocks_db)
                    txn.put(lru_key(rec.used, key), b"", db=self.index.lru_db)
                    stale = self._evict(txn, self.index.counter(txn, b"size") + rec.size)
        except lmdb.Error as e:
            self.index.unwritable(e)
            stale = [path]
        for p in stale:
            unlink_quietly(p)

    def _write_file(self, path: str, data: bytes) -> None:
        # No fsync: a machine crash discards the whole cache (see CacheIndex), and a
        # block damaged otherwise fails its size or digest check and is fetched again.
        fd, tmp = tempfile.mkstemp(dir=self.index.files.tmp_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.rename(tmp, path)
        except BaseException:
            unlink_quietly(tmp)
            raise

    def _evict(self, txn: lmdb.Transaction, size: int) -> list[str]:
        """Drop least recently used entries until `size` fits; their file paths."""
        stale = []
        cursor = txn.cursor(db=self.index.lru_db)
        cursor.first()
        while size > self.limit and cursor.key():
            lkey = cursor.key()
            key = lkey[8:]
            cursor.delete()  # moves to the next key
            rec = Record.unpack(txn.get(key, b"", db=self.index.blocks_db))
            if rec is None or rec.used != int.from_bytes(lkey[:8], "big"):
                continue  # a stale recency key
            txn.delete(key, db=self.index.blocks_db)
            size -= rec.size
            stale.append(self.index.files.block_path(key.decode(), rec))
        self.index.set_counter(txn, b"size", size)
        return stale

    # -- recency and counters ------------------------------------------------

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def _flush(self) -> None:
        """Write pending recency notes and counters, unless another thread is at it."""
        if self.index.env is None or not self._flush_lock.acquire(blocking=False):
            return
        try:
            with self.index.env.begin(write=True) as txn:
                self._flush_into(txn)
        except lmdb.Error as e:
            self.index.unwritable(e)
        finally:
            self._flush_lock.release()

    def _flush_into(self, txn: lmdb.Transaction) -> None:
        with self._lock:
            touched, self._touched = self._touched, {}
            counts, self._counts = self._counts, Counter()
            self._next_flush = time.monotonic() + FLUSH_INTERVAL
        for key, when in touched.items():
            raw = txn.get(key, db=self.index.blocks_db)
            rec = Record.unpack(raw) if raw else None
            if rec is None or rec.used >= when:
                continue
            txn.delete(lru_key(rec.used, key), db=self.index.lru_db)
            txn.put(lru_key(when, key), b"", db=self.index.lru_db)
            txn.put(key, rec._replace(used=when).pack(), db=self.index.blocks_db)
        for name, n in counts.items():
            self.index.add_counter(txn, name.encode(), n)

    # -- single flight -------------------------------------------------------

    def fetch(self, addr: str, size: int, load: Callable[[], bytes]) -> bytes:
        """The chunk's bytes: from the cache, else from `load()` (verified by the caller's
        source) and cached. Threads of this process that ask for one chunk at once share
        one load and its outcome, a failure too (a store that hangs is waited for once,
        not once per reader); another process fetching it is waited for (a byte-range
        lock on fetch.lock at an offset derived from the address), as long as the
        store deadline allows (core.stores.base.deadline)."""
        with self._lock:
            flight = self._fetching.get(addr)
            leader = flight is None
            if leader:
                flight = self._fetching[addr] = _Flight()
        if not leader:
            if not flight.done.wait(max(time_left(FETCH_WAIT), 0)):
                raise StoreUnavailable(f"gave up waiting for chunk {addr} from the store")
            if flight.error is not None:
                raise flight.error
            return flight.data
        try:
            flight.data = self._fetch_locked(addr, size, load)
            return flight.data
        except BaseException as e:
            flight.error = e
            raise
        finally:
            with self._lock:
                del self._fetching[addr]
            flight.done.set()

    def _fetch_locked(self, addr: str, size: int, load: Callable[[], bytes]) -> bytes:
        offset = int(addr[:15], 16)
        held = self._lock_range(offset)
        try:
            data = self.peek(addr, size)  # fetched by another process meanwhile?
            if data is None:
                data = load()
                self.put(addr, data)
            return data
        finally:
            if held:
                fcntl.lockf(self.index.fetch_fd, fcntl.LOCK_UN, 1, offset)

    def _lock_range(self, offset: int) -> bool:
        # POSIX record locks belong to the process, not the thread: the single flight
        # above keeps two threads from sharing one range.
        if self.index.fetch_fd < 0:
            return False
        deadline = time.monotonic() + time_left(FETCH_WAIT)
        pause = 0.001
        while True:
            try:
                fcntl.lockf(self.index.fetch_fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
                return True
            except OSError as e:
                if e.errno not in (errno.EACCES, errno.EAGAIN) or time.monotonic() > deadline:
                    return False  # best effort: fetch without it
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    # -- status --------------------------------------------------------------

    def stats(self) -> dict:
        """size (bytes of blocks), limit, entries, hits, misses, bytes_fetched (bytes
        fetched from the store into the cache), meta_entries, meta_bytes: totals of
        every process since the last clear. `available` is False when the cache
        directory cannot be used (then the counts are this process's only)."""
        with self._lock:
            pending = Counter(self._counts)
        doc = {"directory": self.index.directory, "available": self.index.available,
               "limit": self.limit, "size": 0, "entries": 0, "meta_entries": 0, "meta_bytes": 0}
        names = ("hits", "misses", "bytes_fetched")
        if self.index.env is not None:
            with self.index.env.begin() as txn:
                doc["size"] = self.index.counter(txn, b"size")
                doc["entries"] = txn.stat(self.index.blocks_db)["entries"]
                doc["meta_entries"] = txn.stat(self.index.meta_db)["entries"]
                doc["meta_bytes"] = self.index.counter(txn, b"meta_bytes")
                for name in names:
                    pending[name] += self.index.counter(txn, name.encode())
        doc.update({name: pending[name] for name in names})
        return doc

    def clear(self) -> None:
        """Drop every block and reset the counters; safe while other processes use the cache."""
        with self._lock:
            self._touched.clear()
            self._counts.clear()
        env = self.index.env
        if env is None:
            return
        with env.begin(write=True) as txn:
            entries = list(txn.cursor(db=self.index.blocks_db))
            txn.drop(self.index.blocks_db, delete=False)
            txn.drop(self.index.lru_db, delete=False)
            for name in (b"size", b"hits", b"misses", b"bytes_fetched"):
                self.index.set_counter(txn, name, 0)
        for key, raw in entries:
            rec = Record.unpack(raw)
            if rec:
                unlink_quietly(self.index.files.block_path(key.decode(), rec))

    def close(self) -> None:
        """Write what is pending (recency, counters)."""
        if self.index.env is not None and (self._touched or self._counts):
            self._flush()


class _Flight:
    """One load of a chunk, and its outcome for everyone who waited for it."""

    __slots__ = ("done", "data", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.data: bytes | None = None
        self.error: BaseException | None = None


def _pread(path: str, offset: int, length: int) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None  # evicted since the lookup
    try:
        return os.pread(fd, length, offset)
    finally:
        os.close(fd)


