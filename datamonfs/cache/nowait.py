"""Reads the event loop may do: RWF_NOWAIT, answered only from the page cache.

The block cache and a local store read in place both try a read the kernel is waiting
for on the event loop first, where a thread hand-off costs more than the copy, and
fall back to a thread when the page cache cannot answer at once.
"""

from __future__ import annotations

import errno
import os


class WouldBlock(Exception):
    """The bytes are not all in memory (or must be checked further): read them in a thread."""


class PageCacheReads:
    """preadv of a file, optionally without waiting for the disk. One per reader: a file
    system that refuses RWF_NOWAIT (tmpfs) turns it off for the reader's life."""

    def __init__(self) -> None:
        self.supported = True

    def preadv(self, fd: int, buffers: list, offset: int, nowait: bool) -> int:
        """os.preadv; with `nowait`, WouldBlock unless the page cache holds every byte
        asked for (a short count is WouldBlock too: the thread finds out why)."""
        if nowait and not self.supported:
            raise WouldBlock
        try:
            n = os.preadv(fd, buffers, offset, os.RWF_NOWAIT if nowait else 0)
        except BlockingIOError:
            raise WouldBlock from None
        except OSError as e:
            if nowait and e.errno == errno.EOPNOTSUPP:  # tmpfs: always in threads
                self.supported = False
                raise WouldBlock from None
            raise
        if nowait and n != sum(len(b) for b in buffers):
            raise WouldBlock
        return n
