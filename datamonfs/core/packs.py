"""Packs: new chunks stored together in large objects, each with an index of what it holds.

A pack (`pack/AB/ID`) is chunks concatenated; its index (`packidx/AB/ID`) lists them by
offset, tiling the pack exactly. The ID is random, chosen when the pack is opened: a
file entry records where its chunks are as soon as the file is cut, long before its
pack is full, so the ID cannot be a hash of the pack. A pack is stored first and its
index second, so a pack is visible (to dedup, to listings) exactly when its index
exists; a writer killed between the two leaves a pack no index names and no bundle
references (bundles are recorded after every pack they use, see ingest.py).

Writers learn which chunks the store holds from the indexes, kept per machine in a
`ChunkLocations` (the cache's LMDB, or memory): `refresh` lists packidx/ and reads only
the indexes not seen yet, so an upload of what the store holds sends no request per
chunk. It also forgets the packs the listing no longer shows (a store emptied or made
anew under the same URL, a pack a collector removed): a writer must never name a
location it has not seen listed. The format of both objects: docs/FORMAT.md §5.8.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Protocol

from ..errors import IntegrityError, KeyNotFound
from . import rules
from .chunks import ChunkRef, ChunkStore, MiB
from .encoding import decode, encode, field, is_address, written_version

PACK_TARGET = 32 * MiB  # a pack is sealed when the next chunk would take it past this...
PACK_AGE = 2.0  # ...or when its first chunk has waited this many seconds
UPLOADS = 2  # sealed packs being stored at once (each held in memory until stored)
INDEX_READS = 8  # pack indexes fetched at once by `refresh`
_INDEX_KEY = re.compile(r"packidx/([0-9a-f]{2})/([0-9a-f]{64})")


def new_pack_id() -> str:
    return os.urandom(32).hex()


@dataclass(frozen=True)
class PackIndex:
    """What a pack holds: (address, offset, length) of each chunk, by offset, tiling it."""

    pack: str
    chunks: tuple[tuple[str, int, int], ...]

    @property
    def size(self) -> int:
        return self.chunks[-1][1] + self.chunks[-1][2] if self.chunks else 0

    def to_obj(self) -> dict:
        return {"v": written_version("packindex"), "type": "packindex", "pack": self.pack,
                "size": self.size, "chunks": [list(c) for c in self.chunks]}

    def refs(self) -> Iterator[ChunkRef]:
        for addr, offset, length in self.chunks:
            yield ChunkRef(addr, length, self.pack, offset)

    @classmethod
    def parse(cls, data: bytes, pack: str) -> "PackIndex":
        """An index read from the store, refused (IntegrityError) unless it names its own
        pack and its chunks tile [0, size) in order: an index that lies about offsets or
        lengths would have writers record wrong locations."""
        where = f"pack index {pack[:12]}"
        obj = decode(data, "packindex", where)
        size = field(obj, "size", int, where)
        raw = field(obj, "chunks", list, where)
        if field(obj, "pack", str, where) != pack or rules.size_problem(size) or not raw:
            raise IntegrityError(f"{where} does not describe pack {pack}; remove "
                                 f"{ChunkStore.index_key(pack)}")
        chunks, at = [], 0
        for item in raw:
            if (not isinstance(item, list) or len(item) != 3 or not is_address(item[0])
                    or item[1] != at or type(item[1]) is not int
                    or rules.chunk_size_problem(item[2])):
                raise IntegrityError(f"{where}: chunk {item!r:.120} is not where the chunks "
                                     f"before it end (offset {at}); remove "
                                     f"{ChunkStore.index_key(pack)}")
            chunks.append((item[0], at, item[2]))
            at += item[2]
        if at != size:
            raise IntegrityError(f"{where}: its chunks end at {at}, not at its size {size}; "
                                 f"remove {ChunkStore.index_key(pack)}")
        return cls(pack, tuple(chunks))


class ChunkLocations(Protocol):
    """Where this machine knows a store holds chunks (the cache layer keeps one in LMDB)."""

    def unseen(self, packs: Iterable[str]) -> list[str]:
        """The packs whose index has not been added yet."""

    def keep_only(self, packs: set[str]) -> int:
        """Forget every pack not in `packs` (what the store lists now), and the locations
        in it; how many were forgotten."""

    def add(self, index: PackIndex) -> None:
        """Learn a pack's chunks. A chunk held by several packs is found in the one with the
        smallest id, so that writers that know the same packs write the same locations."""

    def find(self, addr: str) -> ChunkRef | None: ...


class MemoryLocations:
    """ChunkLocations in memory, for a process without a cache."""

    def __init__(self) -> None:
        self._packs: set[str] = set()
        self._where: dict[str, ChunkRef] = {}
        self._lock = threading.Lock()

    def unseen(self, packs: Iterable[str]) -> list[str]:
        with self._lock:
            return [p for p in packs if p not in self._packs]

    def keep_only(self, packs: set[str]) -> int:
        with self._lock:
            gone = self._packs - packs
            if gone:
                self._packs -= gone
                self._where = {a: r for a, r in self._where.items() if r.pack not in gone}
            return len(gone)

    def add(self, index: PackIndex) -> None:
        with self._lock:
            self._packs.add(index.pack)
            for ref in index.refs():
                old = self._where.get(ref.addr)
                if old is None or ref.pack < old.pack:
                    self._where[ref.addr] = ref

    def find(self, addr: str) -> ChunkRef | None:
        return self._where.get(addr)


def refresh(chunks: ChunkStore, locations: ChunkLocations) -> int:
    """Bring `locations` up to the store's pack indexes: forget the packs no longer
    listed, read the indexes not seen yet; how many were read."""
    packs = []
    for key in chunks.store.list("packidx/"):
        m = _INDEX_KEY.fullmatch(key)
        if not m or m[1] != m[2][:2]:
            raise IntegrityError(f"unexpected key {key!r:.200} in the store; remove it")
        packs.append(m[2])
    locations.keep_only(set(packs))
    todo = locations.unseen(packs)
    if not todo:
        return 0

    def read(pack: str) -> None:
        try:
            data = chunks.store.get(chunks.index_key(pack))
        except KeyNotFound:
            raise IntegrityError(f"pack index {pack} vanished while being read") from None
        locations.add(PackIndex.parse(data, pack))

    with ThreadPoolExecutor(min(INDEX_READS, len(todo)), thread_name_prefix="packidx") as pool:
        for future in [pool.submit(read, p) for p in todo]:
            future.result()
    return len(todo)


class PackWriter:
    """Appends chunks to an open pack and hands it, sealed, to a bounded pool that stores
    the pack and then its index; `stored(index)` is called after both are.

    A pack is filled in a buffer that is reused once its pack is stored: an upload holds
    UPLOADS + 1 buffers whatever its size, and copies each chunk once (a list of chunks
    joined when sealed cost a second copy, and fresh memory, of every pack)."""

    def __init__(self, chunks: ChunkStore, stored: Callable[[PackIndex], None],
                 new_id: Callable[[], str] | None = None):
        self.chunks = chunks
        self.stored = stored
        self.new_id = new_id or new_pack_id
        self.pool = ThreadPoolExecutor(UPLOADS, thread_name_prefix="pack-upload")
        self.slots = threading.BoundedSemaphore(UPLOADS)
        self.spare: deque[bytearray] = deque()  # buffers of stored packs, for the next ones
        self.error: BaseException | None = None
        self.packs = 0  # sealed so far
        self._open()

    def _open(self) -> None:
        self.id = self.new_id()
        self.buf = self.spare.pop() if self.spare else bytearray()
        self.listed: list[tuple[str, int, int]] = []
        self.size = 0
        self.opened = 0.0

    def add(self, addr: str, data: bytes | memoryview) -> ChunkRef:
        """Place a chunk in the open pack: where it will be once the pack is stored."""
        self._raise_error()
        if self.listed and (self.size + len(data) > PACK_TARGET
                            or time.monotonic() - self.opened > PACK_AGE):
            self.seal()
        if not self.listed:
            self.opened = time.monotonic()
        ref = ChunkRef(addr, len(data), self.id, self.size)
        end = self.size + len(data)
        self.buf[self.size:end] = data  # in place; grows the buffer while it is too short
        self.listed.append((addr, self.size, len(data)))
        self.size = end
        return ref

    def seal(self) -> None:
        """Send the open pack to be stored (waiting while UPLOADS others are) and open another."""
        if not self.listed:
            return
        self.slots.acquire()  # first: the pack that frees the slot gives its buffer back
        index, buf, size = PackIndex(self.id, tuple(self.listed)), self.buf, self.size
        self._open()
        self.packs += 1
        self.pool.submit(self._store, index, buf, size)

    def _store(self, index: PackIndex, buf: bytearray, size: int) -> None:
        try:
            if self.error is None:
                with memoryview(buf) as whole, whole[:size] as data:
                    self.chunks.store.put(self.chunks.pack_key(index.pack), data)
                self.chunks.store.put(self.chunks.index_key(index.pack), encode(index.to_obj()))
                self.stored(index)
        except BaseException as e:  # reported to the writing thread
            self.error = self.error or e
        finally:
            self.spare.append(buf)
            self.slots.release()

    def _raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def finish(self) -> None:
        """Store what is open and wait for every pack; raises the first failure."""
        try:
            self._raise_error()
            self.seal()
        finally:
            self.pool.shutdown(wait=True)
        self._raise_error()

    def abort(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
