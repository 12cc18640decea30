"""Blocking engine calls run in worker threads, a bounded number at once.

Every store read, tree walk and cache read of a request goes through `run`, so however
many clients there are, at most WORKERS threads touch the store and the block cache,
and a request waiting for one holds no memory but its own state.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import anyio

WORKERS = 8
_limiter: anyio.CapacityLimiter | None = None


async def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    global _limiter
    if _limiter is None:  # made inside the event loop (a limiter belongs to one)
        _limiter = anyio.CapacityLimiter(WORKERS)
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs),
                                          limiter=_limiter)
