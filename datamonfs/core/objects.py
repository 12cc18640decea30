"""Content-addressed metadata objects (trees and chunk lists) in the store.

Objects are immutable, so a verified copy may be cached forever: pass a
`MetaCache` (the cache layer provides one) to read each object from the store once.
"""

from __future__ import annotations

from typing import Protocol

from ..errors import IntegrityError, KeyNotFound
from .encoding import address, decode, encode
from .stores.base import Store


class MetaCache(Protocol):
    def get(self, addr: str) -> bytes | None: ...

    def put(self, addr: str, data: bytes) -> None: ...


class ObjectStore:
    def __init__(self, store: Store, cache: MetaCache | None = None):
        self.store = store
        self.cache = cache

    @staticmethod
    def key(addr: str) -> str:
        return f"meta/{addr[:2]}/{addr}"

    def put(self, obj: dict) -> str:
        data = encode(obj)
        addr = address(data)
        self.store.put_if_absent(self.key(addr), data)
        return addr

    def get(self, addr: str, kind: str) -> dict:
        data = self.cache.get(addr) if self.cache else None
        if data is None:
            try:
                data = self.store.get(self.key(addr))
            except KeyNotFound:
                raise IntegrityError(f"{kind} object {addr} is missing from the store") from None
            if address(data) != addr:
                raise IntegrityError(f"{kind} object {addr} is corrupt in the store")
            if self.cache:
                self.cache.put(addr, data)
        return decode(data, kind, f"{kind} {addr[:12]}")
