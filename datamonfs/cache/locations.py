"""LmdbLocations: where a store holds chunks, as its pack indexes said, kept in the cache's
LMDB so that a writer reads each index once per machine (core.packs.ChunkLocations).

    packs[STORE + PACK]     -> b""                          the indexes read
    chunkloc[STORE + ADDR]  -> PACK + offset (u64) + length (u32, little-endian)

STORE is the first 8 bytes of the BLAKE3 of the store's URL (one cache serves every
store a user works with; what one store holds says nothing of another), PACK and ADDR
are 32 raw bytes. A chunk in several packs keeps the location in the smallest pack id.
When LMDB cannot be written (a full disk), what could not be recorded is kept in
memory for this process; if what could not be written is that packs are gone, LMDB is
not consulted again by this process (it would name locations that are no more).
"""

from __future__ import annotations

import struct
from typing import Iterable

import blake3
import lmdb

from ..core.chunks import ChunkRef
from ..core.packs import MemoryLocations, PackIndex
from .index import CacheIndex

_WHERE = struct.Struct("<32sQI")


class LmdbLocations:
    def __init__(self, index: CacheIndex, store_url: str):
        self.index = index
        self.store = blake3.blake3(store_url.encode()).digest()[:8]
        self.memory = MemoryLocations()  # what LMDB could not take
        self.trusted = True  # False: LMDB holds packs that are gone; memory only

    @property
    def env(self):
        return self.index.env if self.trusted else None

    def unseen(self, packs: Iterable[str]) -> list[str]:
        packs = self.memory.unseen(packs)
        env = self.env
        if env is None:
            return packs
        with env.begin(db=self.index.packs_db) as txn:
            return [p for p in packs if txn.get(self.store + bytes.fromhex(p)) is None]

    def keep_only(self, packs: set[str]) -> int:
        forgotten = self.memory.keep_only(packs)
        env = self.env
        if env is None:
            return forgotten
        try:
            with env.begin(write=True) as txn:
                gone = {key for key in self._keys(txn, self.index.packs_db)
                        if key[8:].hex() not in packs}
                if gone:  # rare (a store made anew): one pass over this store's locations
                    for key in gone:
                        txn.delete(key, db=self.index.packs_db)
                    packed_in = {key[8:] for key in gone}
                    cursor = txn.cursor(db=self.index.chunkloc_db)
                    for key in self._keys(txn, self.index.chunkloc_db):
                        if cursor.set_key(key) and cursor.value()[:32] in packed_in:
                            cursor.delete()
        except lmdb.Error as e:
            self.index.unwritable(e)
            self.trusted = False
            return forgotten
        return forgotten + len(gone)

    def _keys(self, txn, db) -> list[bytes]:
        """The keys of this store in `db`."""
        cursor = txn.cursor(db=db)
        out = []
        if cursor.set_range(self.store):
            for key in cursor.iternext(values=False):
                if not key.startswith(self.store):
                    break
                out.append(bytes(key))
        return out

    def add(self, index: PackIndex) -> None:
        env = self.env
        if env is None:
            self.memory.add(index)
            return
        pack = bytes.fromhex(index.pack)
        try:
            with env.begin(write=True, db=self.index.chunkloc_db) as txn:
                for addr, offset, length in index.chunks:
                    key = self.store + bytes.fromhex(addr)
                    old = txn.get(key)
                    if old is None or pack < old[:32]:
                        txn.put(key, _WHERE.pack(pack, offset, length))
                txn.put(self.store + pack, b"", db=self.index.packs_db)
        except lmdb.Error as e:
            self.index.unwritable(e)
            self.memory.add(index)

    def find(self, addr: str) -> ChunkRef | None:
        ref = self.memory.find(addr)
        env = self.env
        if ref is not None or env is None:
            return ref
        with env.begin(db=self.index.chunkloc_db) as txn:
            raw = txn.get(self.store + bytes.fromhex(addr))
        if raw is None or len(raw) != _WHERE.size:
            return None
        pack, offset, length = _WHERE.unpack(raw)
        return ChunkRef(addr, length, pack.hex(), offset)


def clear_locations(index: CacheIndex) -> None:
    """Forget every store's pack indexes (they are read again when next needed)."""
    if index.env is not None:
        with index.env.begin(write=True) as txn:
            txn.drop(index.packs_db, delete=False)
            txn.drop(index.chunkloc_db, delete=False)
