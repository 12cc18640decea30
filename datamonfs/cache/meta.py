"""LmdbMetaCache: immutable metadata objects (trees, chunk lists) kept in LMDB.

Objects are content-addressed and never change, so they are kept until the
cache is cleared (they are small next to the blocks, and not counted in the
limit). Each read is checked against its BLAKE3 address: a damaged copy is
dropped and read from the store again, never served.
"""

from __future__ import annotations

import lmdb

from ..core.encoding import address
from .index import CacheIndex, log


class LmdbMetaCache:
    """Implements core.objects.MetaCache over the shared cache index."""

    def __init__(self, index: CacheIndex):
        self.index = index

    def get(self, addr: str) -> bytes | None:
        env = self.index.env
        if env is None:
            return None
        with env.begin(db=self.index.meta_db) as txn:
            data = txn.get(addr.encode())
        if data is None or address(data) == addr:
            return data
        log.warning("cached metadata object %s is corrupt; dropped it", addr)
        try:
            with env.begin(write=True) as txn:
                dropped = txn.pop(addr.encode(), db=self.index.meta_db)
                if dropped is not None:
                    self.index.add_counter(txn, b"meta_bytes", -len(dropped))
        except lmdb.Error as e:
            self.index.unwritable(e)
        return None

    def put(self, addr: str, data: bytes) -> None:
        env = self.index.env
        if env is None:
            return
        try:
            with env.begin(write=True) as txn:
                if txn.put(addr.encode(), data, overwrite=False, db=self.index.meta_db):
                    self.index.add_counter(txn, b"meta_bytes", len(data))
        except lmdb.Error as e:
            self.index.unwritable(e)

    def clear(self) -> None:
        env = self.index.env
        if env is None:
            return
        with env.begin(write=True) as txn:
            txn.drop(self.index.meta_db, delete=False)
            self.index.set_counter(txn, b"meta_bytes", 0)
