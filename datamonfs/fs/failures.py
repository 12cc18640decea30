"""Reads of an open file that failed a moment ago because the store did not answer.

The kernel answers a failed page read by reading the page again at once (read-ahead
first, then the single page), and each try would wait out the store's deadline
again: a user's read would fail after twice the timeout. So a read on an open file
whose last read failed that way less than GRACE seconds ago fails at once. A read
after that, or on a file opened anew, tries the store again.
"""

from __future__ import annotations

import time

from ..errors import StoreUnavailable

GRACE = 1.0  # seconds


class RecentFailures:
    def __init__(self) -> None:
        self._until: dict[int, float] = {}  # file handle -> when its reads may try again

    def check(self, fh: int) -> None:
        until = self._until.get(fh)
        if until is not None:
            if time.monotonic() < until:
                raise StoreUnavailable("the store did not answer this file's last read")
            del self._until[fh]

    def failed(self, fh: int) -> None:
        self._until[fh] = time.monotonic() + GRACE

    def forget(self, fh: int) -> None:
        self._until.pop(fh, None)
