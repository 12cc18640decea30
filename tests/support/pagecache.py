"""The page cache's state of a file, for tests of reads that must not wait for the disk:
which pages it holds (mincore), and making sure some are gone."""

from __future__ import annotations

import ctypes
import mmap
import os
import time

PAGE = os.sysconf("SC_PAGE_SIZE")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]


def resident_pages(path: str) -> list[bool]:
    """Which pages of a file the page cache holds (mincore(2) of a mapping of it)."""
    size = os.path.getsize(path)
    vec = (ctypes.c_ubyte * ((size + PAGE - 1) // PAGE))()
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap failed")
        try:
            if _libc.mincore(addr, size, vec) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
        finally:
            _libc.munmap(addr, size)
    finally:
        os.close(fd)
    return [bool(b & 1) for b in vec]


def out_of_memory(path: str) -> None:
    """Drop a block file's pages from the page cache, and make sure they are gone. Call it
    right before each read that should miss them: a read that fails with EAGAIN starts the
    kernel's read-ahead, which brings them back soon after."""
    for _ in range(50):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # dirty pages are not dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        if not any(resident_pages(path)):
            return
        time.sleep(0.02)
    raise AssertionError(f"the kernel kept pages of {path} in memory")


def only_head_in_memory(path: str, length: int) -> None:
    """Leave just the pages of a file's first `length` bytes in the page cache. (Dropping
    only the tail is not enough: the kernel keeps a large folio that spans the cut.)"""
    out_of_memory(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)  # no read-ahead past `length`
        os.pread(fd, length, 0)
    finally:
        os.close(fd)
    pages = resident_pages(path)
    head = (length + PAGE - 1) // PAGE
    assert all(pages[:length // PAGE]) and not any(pages[head:]), pages
