"""Starting to read the small files an upload is about to cut, before it reaches them.

An upload walks its folder in name order, one file at a time. Files whose pages are not
in memory (a first upload, or pages the kernel reclaimed) cost a disk round trip each,
with nothing else in flight: that, not cutting or hashing, was most of an upload of
many small files. So the walk looks at each entry a few dozen entries before its turn
(ingest.py), and a small regular file is then opened and the kernel asked to read it
(POSIX_FADV_WILLNEED): the reads of the next files are in flight together while this
one is cut, and the file is read when its turn comes, from memory. Threads reading
ahead did as well on cold files but cost a third more time on files in memory (the
interpreter's lock passed back and forth per file); this costs one call per file.
At most OPEN_AHEAD files are held open, whatever the folder's shape.
"""

from __future__ import annotations

import os
from typing import BinaryIO

from .chunks import WHOLE

OPEN_AHEAD = 128  # files opened ahead and not yet taken


class ReadAhead:
    """Small files opened, and their reading started, before the walk reaches them; `take`
    each once, in any order. `close` when done (also after a failure)."""

    def __init__(self) -> None:
        self.opened: dict[str, int] = {}

    def ahead(self, path: str, size: int) -> None:
        """Start reading the regular file `path` of `size` bytes (its lstat) when it is small
        and fewer than OPEN_AHEAD are open. Failures are left to the walk, when its turn comes."""
        if not 0 < size < WHOLE or len(self.opened) >= OPEN_AHEAD or path in self.opened:
            return
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return
        try:
            os.posix_fadvise(fd, 0, size, os.POSIX_FADV_WILLNEED)
        except OSError:
            pass  # a file system without read-ahead: read when its turn comes
        self.opened[path] = fd

    def take(self, path: str) -> BinaryIO | None:
        """The file opened ahead (the caller closes it), or None: then open it yourself."""
        fd = self.opened.pop(path, None)
        return None if fd is None else open(fd, "rb", buffering=0)

    def close(self) -> None:
        for fd in self.opened.values():
            os.close(fd)
        self.opened.clear()
