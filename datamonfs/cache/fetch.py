"""Fetching missing chunks into the block cache once, across threads and processes.

Within a process, threads that miss one chunk share one fetch and its outcome, a
failure too (a store that hangs is waited for once, not once per reader). Across
processes, a byte-range lock on fetch.lock at an offset derived from each address:
a process fetches the chunks whose locks it gets at once, then waits for the others
(holding nothing, so two processes never wait for each other) and finds them cached,
or fetches what their fetcher could not. All of it within the store deadline of the
read (core.stores.base.deadline).
"""

from __future__ import annotations

import errno
import fcntl
import threading
import time
from typing import Callable, Sequence

from ..core.chunks import ChunkRef
from ..core.stores.base import time_left
from ..errors import StoreUnavailable
from .blocks import BlockCache

FETCH_WAIT = 60.0  # longest wait for another fetch of the same chunk (or the store deadline)

Load = Callable[[list[ChunkRef]], list[bytes]]  # verified bytes of chunks, in order


class Fetcher:
    def __init__(self, cache: BlockCache):
        self.cache = cache
        self._lock = threading.Lock()
        self._fetching: dict[str, _Flight] = {}  # addr -> the load under way

    def fetch(self, refs: Sequence[ChunkRef], load: Load) -> dict[str, bytes]:
        """The bytes of each chunk of `refs` (distinct addresses), by address: from the
        cache, else from `load` (which verifies them), then cached."""
        mine, theirs = [], []
        with self._lock:
            for ref in refs:
                flight = self._fetching.get(ref.addr)
                if flight is None:
                    flight = self._fetching[ref.addr] = _Flight()
                    mine.append((ref, flight))
                else:
                    theirs.append((ref, flight))
        got: dict[str, bytes] = {}
        try:
            if mine:
                got = self._fetch_locked([ref for ref, _ in mine], load)
        except BaseException as e:
            for _, flight in mine:
                flight.error = e
            raise
        finally:
            with self._lock:
                for ref, flight in mine:
                    del self._fetching[ref.addr]
                    flight.data = got.get(ref.addr)
                    flight.done.set()
        for ref, flight in theirs:
            if not flight.done.wait(max(time_left(FETCH_WAIT), 0)):
                raise StoreUnavailable(f"gave up waiting for chunk {ref.addr} from the store")
            if flight.error is not None:
                raise flight.error
            got[ref.addr] = flight.data
        return got

    def _fetch_locked(self, refs: list[ChunkRef], load: Load) -> dict[str, bytes]:
        held, busy = [], []
        for ref in refs:
            (held if self._try_lock(ref.addr) else busy).append(ref)
        got: dict[str, bytes] = {}
        try:
            got.update(self._cached_or_loaded(held, load))
        finally:
            for ref in held:
                self._unlock(ref.addr)
        for ref in busy:  # another process is fetching it: wait for it, then look again
            held_now = self._wait_lock(ref.addr)
            try:
                got.update(self._cached_or_loaded([ref], load))
            finally:
                if held_now:
                    self._unlock(ref.addr)
        return got

    def _cached_or_loaded(self, refs: list[ChunkRef], load: Load) -> dict[str, bytes]:
        got, missing = {}, []
        for ref in refs:
            data = self.cache.peek(ref.addr, ref.size)  # fetched by another process meanwhile?
            if data is None:
                missing.append(ref)
            else:
                got[ref.addr] = data
        if missing:
            loaded = list(zip((ref.addr for ref in missing), load(missing)))
            self.cache.put_many(loaded)
            got.update(loaded)
        return got

    # POSIX record locks belong to the process, not the thread: the single flight above
    # keeps two threads from sharing one range.

    def _lock_args(self, addr: str) -> tuple[int, int]:
        return self.cache.index.fetch_fd, int(addr[:15], 16)

    def _try_lock(self, addr: str) -> bool:
        fd, offset = self._lock_args(addr)
        if fd < 0:
            return True  # no lock file: fetch without it
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
            return True
        except OSError as e:
            return e.errno not in (errno.EACCES, errno.EAGAIN)  # best effort otherwise

    def _wait_lock(self, addr: str) -> bool:
        deadline = time.monotonic() + time_left(FETCH_WAIT)
        pause = 0.001
        while not self._try_lock(addr):
            if time.monotonic() > deadline:
                return False  # best effort: fetch without it
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        return True

    def _unlock(self, addr: str) -> None:
        fd, offset = self._lock_args(addr)
        if fd >= 0:
            try:
                fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset)
            except OSError:
                pass  # taken "without it" (see _try_lock)


class _Flight:
    """One load of a chunk, and its outcome for everyone who waited for it."""

    __slots__ = ("done", "data", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.data: bytes | None = None
        self.error: BaseException | None = None
