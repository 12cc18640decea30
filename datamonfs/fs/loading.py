"""LoadingCache: values loaded on demand on the event loop, kept least recently used.

Concurrent requests for one key share one load and its outcome: when the load
fails, everyone who waited for it gets that failure, rather than starting a load
of their own one after the other (a store that hangs is then waited for once per
read, not once per reader). A failed load is not remembered: the next request
tries again. `prefetch` starts a load in the background for a request that will
likely come.
"""

from __future__ import annotations

from typing import Awaitable, Callable, Generic, Hashable, TypeVar

import trio

from ..lru import LRU

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Load:
    __slots__ = ("done", "value", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.value = None
        self.error: BaseException | None = None


class LoadingCache(Generic[K, V]):
    def __init__(self, max_weight: int, weigh: Callable[[V], int] | None = None):
        self._values: LRU[K, V] = LRU(max_weight, weigh)
        self._loading: dict[K, _Load] = {}

    @property
    def weight(self) -> int:
        return self._values.weight

    def __contains__(self, key: K) -> bool:
        return key in self._values

    def __len__(self) -> int:
        return len(self._values)

    def loading(self, key: K) -> bool:
        return key in self._loading

    def cached(self, key: K) -> V | None:
        return self._values.get(key)

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        while True:
            hit = self.cached(key)
            if hit is not None:
                return hit
            pending = self._loading.get(key)
            if pending is None:
                break
            await pending.done.wait()
            if isinstance(pending.error, trio.Cancelled):
                continue  # the task that loaded it was cancelled, not this one: load it here
            if pending.error is not None:
                raise pending.error
            return pending.value
        self._loading[key] = pending = _Load()
        try:
            pending.value = value = await load()
        except BaseException as e:
            pending.error = e
            raise
        finally:
            del self._loading[key]
            pending.done.set()
        self.put(key, value)
        return value

    def put(self, key: K, value: V) -> None:
        if key not in self._values:
            self._values[key] = value

    def prefetch(self, key: K, load: Callable[[], Awaitable[V]]) -> None:
        """Start loading `key` in the background, unless it is cached or loading."""
        if key not in self._values and key not in self._loading:
            trio.lowlevel.spawn_system_task(self._prefetch, key, load)

    async def _prefetch(self, key: K, load: Callable[[], Awaitable[V]]) -> None:
        try:
            await self.get(key, load)
        except Exception:
            pass  # the request that needs it waits for this load, or loads it again
