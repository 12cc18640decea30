"""LRU: the one least-recently-used map every bounded in-memory cache here is made of.

Bounded by a total weight (each value weighs 1 unless `weigh` says otherwise);
inserting past the bound drops the least recently used entries, always keeping the
newest one. `dispose(key, value)` is called for every entry that leaves the map
(evicted, popped, replaced or cleared), so a cache of open descriptors closes them
in one place. Not thread-safe: callers that share one hold their own lock.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Generic, Hashable, Iterator, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    def __init__(self, capacity: int, weigh: Callable[[V], int] | None = None,
                 dispose: Callable[[K, V], None] | None = None):
        if capacity < 1:
            raise ValueError("an LRU holds at least one entry")
        self.capacity = capacity
        self.weight = 0
        self._weigh = weigh
        self._dispose = dispose
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value (now the most recently used), or `default`."""
        hit = self._items.get(key)
        if hit is None:
            return default
        self._items.move_to_end(key)
        return hit[0]

    def peek(self, key: K, default: V | None = None) -> V | None:
        """The value, leaving the order as it is."""
        hit = self._items.get(key)
        return default if hit is None else hit[0]

    def __setitem__(self, key: K, value: V) -> None:
        self.pop(key)
        w = self._weigh(value) if self._weigh else 1
        self._items[key] = (value, w)
        self.weight += w
        while self.weight > self.capacity and len(self._items) > 1:
            old, (gone, w_old) = self._items.popitem(last=False)
            self.weight -= w_old
            if self._dispose:
                self._dispose(old, gone)

    def pop(self, key: K, default: V | None = None) -> V | None:
        """Remove an entry (disposing of it); its value, or `default`."""
        hit = self._items.pop(key, None)
        if hit is None:
            return default
        self.weight -= hit[1]
        if self._dispose:
            self._dispose(key, hit[0])
        return hit[0]

    def clear(self) -> None:
        while self._items:
            key, (value, _) = self._items.popitem(last=False)
            if self._dispose:
                self._dispose(key, value)
        self.weight = 0

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._items))
