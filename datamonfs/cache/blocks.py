"""BlockCache: chunk bytes in block files under the cache directory, indexed by LMDB.

Inserting: the chunks of one insert (one chunk, or a run of chunks fetched with one
request) go to a temp file, one after another, which is renamed to blocks/ab/TOKEN,
and only then are their index entries committed, so a crash never leaves an entry
without its whole file. A file is never rewritten (each insert has a new token): a
reader that has opened one reads it whole even if it is evicted meanwhile. Grouping a
run's chunks in one file keeps small chunks cheap: creating a file cost 90-370 us here,
a run of 64 KiB chunks in one file costs that once.

The index keeps, per chunk, where it is in its file and an xxh3-64 digest of every
16 KiB piece of it. Every read, of a whole chunk or of a range, reads the pieces it
touches and checks each one, so a damaged file is dropped (and its chunks fetched
again), never served, while a 4 KiB random read costs one 16 KiB read and hash.

Recency and eviction work on files: a hit notes the time of its file in memory; the
notes, and the hit/miss counters, reach LMDB in one write transaction with the next
insert, or at most once per FLUSH_INTERVAL, so hits do not queue on LMDB's single
writer. The inserting process drops the least recently used files, with their chunks'
entries, in the same transaction until the total is within the limit, and unlinks
them after the commit. Readers never wait for it (LMDB readers do not block on
writers). Commits are not synced one by one: see CacheIndex. Fetching what is missing,
once across threads and processes: fetch.py.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from typing import Iterator, Sequence

import lmdb

from ..core.chunks import LARGEST_CHUNK
from ..core.config import check_cache_size
from ..errors import IntegrityError
from .nowait import PageCacheReads, WouldBlock
from .index import (PIECE, CacheIndex, FileRecord, Record, log, lru_key, piece_digests,
                    unlink_quietly)

FLUSH_INTERVAL = 1.0  # seconds between recency/counter writes while only hits happen
DEFAULT_LIMIT = 10 << 30
FREE_SHARE = 0.2  # of the space available to the cache, by default


def default_limit(index: CacheIndex) -> int:
    """10 GiB, or 20% of the space the cache could have (free space plus what it
    holds already, so that the limit does not shrink as the cache fills), if smaller."""
    if index.env is None:
        return DEFAULT_LIMIT  # nothing is cached anyway
    with index.env.begin() as txn:
        used = index.counter(txn, b"size")
    st = os.statvfs(index.directory)
    room = (st.f_bavail * st.f_frsize + used) * FREE_SHARE
    return max(LARGEST_CHUNK, min(DEFAULT_LIMIT, int(room)))


class BlockCache:
    """The block cache of one directory; thread-safe and shared by processes."""

    def __init__(self, index: CacheIndex, limit: int):
        self.index = index
        self.limit = check_cache_size(limit, "cache limit")
        self._lock = threading.Lock()
        self._touched: dict[bytes, int] = {}  # file token -> last use
        self._counts: Counter[str] = Counter()
        self._flush_lock = threading.Lock()
        self._next_flush = time.monotonic() + FLUSH_INTERVAL
        self._reads = PageCacheReads()

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

    def get_range(self, addr: str, start: int, end: int, size: int | None = None,
                  nowait: bool = False) -> bytes | None:
        """Bytes [start, end) of a cached chunk, or None (counted as a miss). Only the
        pieces holding the range are read, and each is checked against its digest. With
        `nowait` (on the event loop), WouldBlock where a read would wait for the disk, or
        where the chunk is missing or damaged: nothing is written then (see read_into)."""
        data = self._read(addr, start, end, size, nowait)
        self._count("hits" if data is not None else "misses")
        return data

    def read_into(self, refs: Sequence[tuple[str, int]], buf, nowait: bool = False) -> bool:
        """Fill `buf` with the chunks of `refs` ((address, listed size), their sizes adding
        up to len(buf)), each checked: True when all were cached and good, else False (a
        damaged file dropped). Neighbours in one block file are read with one preadv,
        straight into `buf`: no copy but the kernel's.

        With `nowait` the caller is the event loop: a read the page cache cannot answer at
        once (RWF_NOWAIT), a miss and a damaged file all raise WouldBlock, and nothing is
        written (no drop, no recency flush: LMDB's writer lock may be held by another
        process), so the thread the caller falls back to does what must be done."""
        env = self.index.env
        if env is None or (nowait and not self._reads.supported):
            if nowait:
                raise WouldBlock
            return False
        with env.begin(db=self.index.blocks_db) as txn:
            raws = [txn.get(addr.encode()) for addr, _ in refs]
        recs = [Record.unpack(raw) if raw else None for raw in raws]
        for (addr, size), rec in zip(refs, recs):
            if rec is None:
                if nowait:
                    raise WouldBlock
                return False  # the caller's per-chunk path fetches it (and drops a bad entry)
            if rec.size != size:
                raise IntegrityError(f"chunk {addr} has {rec.size} bytes, not the {size} its "
                                     "file lists")
        view = memoryview(buf)
        at, tokens = 0, set()
        for i, j in _file_runs(recs):
            length = recs[j - 1].offset + recs[j - 1].size - recs[i].offset
            path = self.index.files.block_path(recs[i].token)
            got = self._preadv(path, recs[i].offset, view[at:at + length], nowait)
            good = got == length
            for k in range(i, j):
                if good and piece_digests(view[at:at + recs[k].size]) != recs[k].digests:
                    good = False
                at += recs[k].size
            if not good:
                if nowait:
                    raise WouldBlock
                if got is not None:  # else evicted since the lookup
                    log.warning("cached block %s is corrupt (size or checksum mismatch); "
                                "dropped it, its chunks will be fetched again", path)
                self._drop(refs[i][0].encode(), raws[i])
                return False
            tokens.add(recs[i].token)
        for token in tokens:
            self._touch(token, flush=not nowait)
        self._count("hits", len(refs))
        return True

    def _preadv(self, path: str, offset: int, view: memoryview, nowait: bool) -> int | None:
        """Read len(view) bytes of a block file into view: how many it had, None when the
        file is gone; with `nowait`, WouldBlock when the page cache does not hold them all."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            return self._reads.preadv(fd, [view], offset, nowait)
        finally:
            os.close(fd)

    def get_many(self, refs: Sequence[tuple[str, int]]) -> list[bytes | None]:
        """get() of each (address, listed size), with one index transaction, and one read
        for neighbouring chunks of one block file (a run fetched together is read together)."""
        env = self.index.env
        if env is None:
            self._count("misses", len(refs))
            return [None] * len(refs)
        with env.begin(db=self.index.blocks_db) as txn:
            raws = [txn.get(addr.encode()) for addr, _ in refs]
        recs = [Record.unpack(raw) if raw else None for raw in raws]
        for (addr, size), raw, rec in zip(refs, raws, recs):
            if rec is not None and rec.size != size:
                raise IntegrityError(f"chunk {addr} has {rec.size} bytes, not the {size} its "
                                     "file lists")
            if rec is None and raw is not None:
                self._drop(addr.encode(), raw)
        out: list[bytes | None] = [None] * len(refs)
        for i, j in _file_runs(recs):
            self._read_run(refs, raws, recs, i, j, out)
        hits = sum(data is not None for data in out)
        self._count("hits", hits)
        self._count("misses", len(refs) - hits)
        return out

    def _read_run(self, refs, raws, recs: list, i: int, j: int, out: list) -> None:
        """out[i:j]: the chunks recs[i:j], neighbours in one block file, read together."""
        first, last = recs[i], recs[j - 1]
        path = self.index.files.block_path(first.token)
        data = bytearray(last.offset + last.size - first.offset)
        got = self._preadv(path, first.offset, memoryview(data), False)
        view = memoryview(data)[:got or 0]
        for k in range(i, j):
            rec = recs[k]
            piece = view[rec.offset - first.offset:rec.offset - first.offset + rec.size]
            if len(piece) == rec.size and piece_digests(piece) == rec.digests:
                out[k] = bytes(piece)
            else:
                if got is not None:
                    log.warning("cached block %s is corrupt (size or checksum mismatch); "
                                "dropped it, its chunks will be fetched again", path)
                self._drop(refs[k][0].encode(), raws[k])
                return  # the rest of the file went with it
        self._touch(first.token)

    def _read(self, addr: str, start: int, end: int | None, size: int | None,
              nowait: bool = False) -> bytes | None:
        key = addr.encode()
        raw = self._entry(key)
        if raw is None:
            if nowait:
                raise WouldBlock
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
            data = self._read_pieces(rec, start, end, nowait)
        if data is None:
            if nowait:
                raise WouldBlock
            self._drop(key, raw)
            return None
        self._touch(rec.token, flush=not nowait)
        return data

    def _read_pieces(self, rec: Record, start: int, end: int,
                     nowait: bool = False) -> bytes | None:
        """Bytes [start, end) of a chunk, read from its file by whole pieces and checked;
        None when the file is gone (evicted since the lookup) or damaged."""
        if start == end:
            return b""
        first, last = start // PIECE, (end - 1) // PIECE
        offset = first * PIECE
        length = min((last + 1) * PIECE, rec.size) - offset
        path = self.index.files.block_path(rec.token)
        if nowait and not self._reads.supported:
            raise WouldBlock
        data = bytearray(length)
        got = self._preadv(path, rec.offset + offset, memoryview(data), nowait)
        if got is None:
            return None
        if got != length or piece_digests(data) != rec.digests[8 * first:8 * (last + 1)]:
            if nowait:
                raise WouldBlock
            log.warning("cached block %s is corrupt (size or checksum mismatch); dropped it, "
                        "its chunks will be fetched again", path)
            return None
        if (start, end) == (offset, offset + length):
            return bytes(data)
        return data[start - offset:end - offset]

    def _touch(self, token: bytes, flush: bool = True) -> None:
        with self._lock:
            self._touched[token] = time.time_ns()
        if flush and time.monotonic() >= self._next_flush:
            self._flush()

    def contains(self, addr: str) -> bool:
        return self._entry(addr.encode()) is not None

    def preload(self, addrs: Sequence[str]) -> list[bool]:
        """Which chunks are cached; for those, the kernel is asked to start reading them
        (one fadvise per run of neighbours in a block file, not one per chunk), so that a
        sequential reader finds the next chunks in memory, not on disk."""
        env = self.index.env
        if env is None:
            return [False] * len(addrs)
        with env.begin(db=self.index.blocks_db) as txn:
            recs = [Record.unpack(raw) if raw else None
                    for raw in (txn.get(addr.encode()) for addr in addrs)]
        for i, j in _file_runs(recs):
            first, last = recs[i], recs[j - 1]
            try:
                fd = os.open(self.index.files.block_path(first.token), os.O_RDONLY)
            except OSError:
                continue  # evicted meanwhile: the read will miss and fetch it
            try:
                os.posix_fadvise(fd, first.offset, last.offset + last.size - first.offset,
                                 os.POSIX_FADV_WILLNEED)
            finally:
                os.close(fd)
        return [rec is not None for rec in recs]

    def _entry(self, key: bytes) -> bytes | None:
        env = self.index.env
        if env is None:
            return None
        with env.begin(db=self.index.blocks_db) as txn:
            return txn.get(key)

    def _drop(self, key: bytes, raw: bytes) -> None:
        """Remove an entry that failed to read, with the rest of its file (damaged or gone),
        unless another process replaced the entry."""
        rec = Record.unpack(raw)
        stale = []
        try:
            with self.index.env.begin(write=True) as txn:
                if txn.get(key, db=self.index.blocks_db) != raw:
                    return
                txn.delete(key, db=self.index.blocks_db)
                if rec:
                    stale = self._remove_file(txn, rec.token)
        except lmdb.Error as e:
            self.index.unwritable(e)
            return
        for path in stale:
            unlink_quietly(path)

    def _remove_file(self, txn: lmdb.Transaction, token: bytes) -> list[str]:
        """Drop a block file's entry and its chunks' (in `txn`); the path to unlink after
        the commit, if it had an entry."""
        raw = txn.pop(token, db=self.index.files_db)
        frec = FileRecord.unpack(raw) if raw else None
        if frec is None:
            return []
        txn.delete(lru_key(frec.used, token), db=self.index.lru_db)
        for key in frec.keys():
            rec = Record.unpack(txn.get(key, b"", db=self.index.blocks_db))
            if rec is not None and rec.token == token:
                txn.delete(key, db=self.index.blocks_db)
        self.index.add_counter(txn, b"size", -frec.bytes)
        return [self.index.files.block_path(token)]

    # -- writing -------------------------------------------------------------

    def put(self, addr: str, data: bytes) -> None:
        """Cache a chunk whose bytes the caller has verified against `addr`."""
        self.put_many([(addr, data)])

    def put_many(self, chunks: Sequence[tuple[str, bytes]]) -> None:
        """Cache chunks the caller has verified, in one block file (those cached already
        are left out). Counted in bytes_fetched. On a full disk nothing is cached."""
        self._count("bytes_fetched", sum(len(data) for _, data in chunks))
        if self.index.env is None:
            return
        new: dict[str, bytes] = {}
        with self.index.env.begin(db=self.index.blocks_db) as txn:
            for addr, data in chunks:
                if addr not in new and txn.get(addr.encode()) is None:
                    new[addr] = data
        total = sum(len(data) for data in new.values())
        if not new or total > self.limit:
            return
        token = os.urandom(8)
        path = self.index.files.block_path(token)
        try:
            self._write_file(path, list(new.values()))
        except OSError as e:
            self.index.unwritable(e)
            return
        records, offset = [], 0
        for addr, data in new.items():
            records.append((addr.encode(), Record(len(data), offset, token, piece_digests(data))))
            offset += len(data)
        now = time.time_ns()
        stale = [path]  # unless an entry is committed below
        try:
            with self.index.env.begin(write=True) as txn:
                self._flush_into(txn)
                indexed = []
                for key, rec in records:
                    if txn.get(key, db=self.index.blocks_db) is None:  # else another process won
                        txn.put(key, rec.pack(), db=self.index.blocks_db)
                        indexed.append(bytes.fromhex(key.decode()))
                if indexed:
                    frec = FileRecord(total, now, b"".join(indexed))
                    txn.put(token, frec.pack(), db=self.index.files_db)
                    txn.put(lru_key(now, token), b"", db=self.index.lru_db)
                    stale = self._evict(txn, self.index.counter(txn, b"size") + total)
        except lmdb.Error as e:
            self.index.unwritable(e)
            stale = [path]
        for p in stale:
            unlink_quietly(p)

    def _write_file(self, path: str, parts: list[bytes]) -> None:
        # No fsync: a machine crash discards the whole cache (see CacheIndex), and a
        # block damaged otherwise fails its size or digest check and is fetched again.
        tmp = os.path.join(self.index.files.tmp_dir, os.path.basename(path))
        try:
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
                for data in parts:
                    f.write(data)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.rename(tmp, path)
        except BaseException:
            unlink_quietly(tmp)
            raise

    def _evict(self, txn: lmdb.Transaction, size: int) -> list[str]:
        """Drop least recently used files until `size` fits; their paths."""
        stale = []
        cursor = txn.cursor(db=self.index.lru_db)
        cursor.first()
        while size > self.limit and cursor.key():
            lkey = cursor.key()
            token = lkey[8:]
            raw = txn.get(token, db=self.index.files_db)
            frec = FileRecord.unpack(raw) if raw else None
            if frec is None or frec.used != int.from_bytes(lkey[:8], "big"):
                cursor.delete()  # a stale recency key; moves to the next key
                continue
            size -= frec.bytes
            stale += self._remove_file(txn, token)  # deletes lkey too
            cursor.set_range(b"")
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
        for token, when in touched.items():
            raw = txn.get(token, db=self.index.files_db)
            frec = FileRecord.unpack(raw) if raw else None
            if frec is None or frec.used >= when:
                continue
            txn.delete(lru_key(frec.used, token), db=self.index.lru_db)
            txn.put(lru_key(when, token), b"", db=self.index.lru_db)
            txn.put(token, frec._replace(used=when).pack(), db=self.index.files_db)
        for name, n in counts.items():
            self.index.add_counter(txn, name.encode(), n)

    # -- status --------------------------------------------------------------

    def stats(self) -> dict:
        """size (bytes of block files), limit, entries (chunks), hits, misses,
        bytes_fetched (bytes fetched from the store into the cache), meta_entries,
        meta_bytes: totals of every process since the last clear. `available` is False
        when the cache directory cannot be used (then the counts are this process's only)."""
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
            tokens = [token for token, _ in txn.cursor(db=self.index.files_db)]
            for db in (self.index.blocks_db, self.index.files_db, self.index.lru_db):
                txn.drop(db, delete=False)
            for name in (b"size", b"hits", b"misses", b"bytes_fetched"):
                self.index.set_counter(txn, name, 0)
        for token in tokens:
            unlink_quietly(self.index.files.block_path(token))

    def close(self) -> None:
        """Write what is pending (recency, counters)."""
        if self.index.env is not None and (self._touched or self._counts):
            self._flush()


def _file_runs(recs: list) -> Iterator[tuple[int, int]]:
    """(i, j) of each run recs[i:j] of neighbours in one block file, in order, one after
    another without a gap (a run fetched together was cached together); None is skipped."""
    i = 0
    while i < len(recs):
        if recs[i] is None:
            i += 1
            continue
        j = i + 1
        while j < len(recs) and recs[j] is not None and recs[j].token == recs[i].token \
                and recs[j].offset == recs[j - 1].offset + recs[j - 1].size:
            j += 1
        yield i, j
        i = j
