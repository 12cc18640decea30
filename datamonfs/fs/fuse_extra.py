"""FUSE requests pyfuse3 does not dispatch, answered anyway: fallocate.

pyfuse3 3.5 gives libfuse no `fallocate` handler, so the kernel gets ENOSYS once and
answers EOPNOTSUPP ever after: tools that preallocate do nothing, and glibc's
posix_fallocate falls back to writing a byte per 4 KiB block (16,384 writes for
64 MiB, racing with other writers). libfuse copies the handler table into its
session when pyfuse3.init creates it, so after init, before the first request,
`install` writes a handler into that copy:

- pyfuse3's module keeps its table (`fuse_ops`) and the session pointer (`session`)
  in static variables, found through the module's ELF symbol table (the module is
  built with one; a stripped build makes `install` return False);
- the session's copy is found by searching the session for the table's bytes
  (exactly one match, or nothing is touched), and `fallocate` is slot 40 of
  `struct fuse_lowlevel_ops` in every libfuse 3 (the struct only ever grew at its end);
- the handler is a ctypes callback run by libfuse on the trio thread inside
  pyfuse3's request loop (holding the GIL): it starts a trio system task that awaits
  `fs.fallocate(inode, mode, offset, length)` and answers with fuse_reply_err.

Anything unexpected leaves the session as pyfuse3 made it: fallocate then stays
EOPNOTSUPP, which is what it was. docs/ARCHITECTURE.md, "fallocate".
"""

from __future__ import annotations

import ctypes
import errno
import logging
import struct
from typing import Awaitable, Callable

import pyfuse3
import trio

log = logging.getLogger(__name__)

FALLOCATE_SLOT = 40  # init, destroy, lookup, ... flock, fallocate: fuse_lowlevel.h
_SEARCH = 1024  # bytes of the session searched for its copy of the table
_POINTER = ctypes.sizeof(ctypes.c_void_p)

# void (*fallocate)(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
#                   struct fuse_file_info *fi)
_FALLOCATE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int,
                              ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p)
_installed: list = []  # the callback must outlive the session


def elf_symbols(path: str, wanted: set[str]) -> dict[str, tuple[int, int]]:
    """(value, size) of the named symbols in an ELF64 little-endian file's .symtab."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return {}
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
                for i in range(shnum)]
    found = {}
    for _, kind, _, _, offset, size, link, _, _, entsize in sections:
        if kind != 2 or not entsize:  # SHT_SYMTAB
            continue
        strtab = sections[link][4]
        for at in range(offset, offset + size, entsize):
            name_off, _, _, _, value, sym_size = struct.unpack_from("<IBBHQQ", data, at)
            end = data.index(b"\0", strtab + name_off)
            name = data[strtab + name_off:end].decode("ascii", "replace")
            if name in wanted:
                found[name] = (value, sym_size)
    return found


def _session_table() -> int | None:
    """The address of the live session's copy of the handler table."""
    path = pyfuse3.__file__
    symbols = elf_symbols(path, {"PyInit_pyfuse3", "__pyx_v_7pyfuse3_fuse_ops",
                                 "__pyx_v_7pyfuse3_session"})
    if len(symbols) != 3:
        return None
    module = ctypes.CDLL(path)  # the loaded module: dlopen hands out the same handle
    base = ctypes.cast(module.PyInit_pyfuse3, ctypes.c_void_p).value - symbols["PyInit_pyfuse3"][0]
    table_at, table_size = symbols["__pyx_v_7pyfuse3_fuse_ops"]
    if table_size < (FALLOCATE_SLOT + 1) * _POINTER:
        return None
    table = ctypes.string_at(base + table_at, table_size)
    session = ctypes.c_void_p.from_address(base + symbols["__pyx_v_7pyfuse3_session"][0]).value
    slots = [table[i:i + _POINTER] for i in range(0, table_size, _POINTER)]
    if not session or slots[FALLOCATE_SLOT] != bytes(_POINTER) or slots[0] == bytes(_POINTER):
        return None  # no session yet, or a table unlike the one expected
    memory = ctypes.string_at(session, _SEARCH + table_size)
    hits = [at for at in range(0, _SEARCH, _POINTER) if memory[at:at + table_size] == table]
    return session + hits[0] if len(hits) == 1 else None


def install(fallocate: Callable[[int, int, int, int], Awaitable[None]]) -> bool:
    """After pyfuse3.init, before pyfuse3.main: route FUSE_FALLOCATE to `fallocate(inode,
    mode, offset, length)`, an async function raising pyfuse3.FUSEError to fail. Returns
    whether it could (else the session stays as pyfuse3 made it: fallocate EOPNOTSUPP)."""
    try:
        table = _session_table()
    except (OSError, ValueError, struct.error, AttributeError) as e:
        log.warning("fallocate not available: %s", e)
        return False
    if table is None:
        log.warning("fallocate not available: pyfuse3's session is not as expected")
        return False
    libfuse = ctypes.CDLL("libfuse3.so.3")
    reply = libfuse.fuse_reply_err
    reply.argtypes = [ctypes.c_void_p, ctypes.c_int]

    async def answer(req: int, ino: int, mode: int, offset: int, length: int) -> None:
        err = errno.EIO
        try:
            await fallocate(ino, mode, offset, length)
            err = 0
        except pyfuse3.FUSEError as e:
            err = e.errno
        except Exception:  # the handler's guard turns failures into FUSEError already
            log.exception("fallocate failed")
        finally:  # never leave a request unanswered (also when cancelled at shutdown)
            reply(req, err)

    def on_fallocate(req, ino, mode, offset, length, fi) -> None:
        try:
            trio.lowlevel.spawn_system_task(answer, req, ino, mode, offset, length)
        except BaseException:
            log.exception("fallocate could not be started")
            reply(req, errno.EIO)

    handler = _FALLOCATE(on_fallocate)
    _installed.append(handler)
    ctypes.c_void_p.from_address(table + FALLOCATE_SLOT * _POINTER).value = \
        ctypes.cast(handler, ctypes.c_void_p).value
    return True
