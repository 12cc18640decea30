"""InPlaceReader: chunks read where they are, in the files of a local store.

A store in a directory on a local file system keeps its packs on the same disks the
block cache would use. Copying its chunks into block files would write every byte of
a cold read a second time and hold it twice, for what the kernel's page cache gives
anyway: a cold mount read of such a store spent 18% of its samples writing block
files and 26% reading the packs (bench/results/profiles). So its chunks are read in
place, a run of neighbours in a pack with one preadv straight into the caller's
buffer, and every chunk is checked against its BLAKE3 address on every read (store
content is hostile: a chunk that does not match is an IntegrityError, never bytes;
BLAKE3 costs ~12 us per 64 KiB chunk on one core here). Read-ahead is the kernel's,
asked for with one fadvise(WILLNEED) per run. Stores on network file systems (NFS,
SMB, FUSE, ...) and GCS go through the block cache: see `reads_in_place`.

The interface is CachedChunkReader's, so FileReader and downloads take either; with
`nowait` (the event loop) a read the page cache cannot answer at once is WouldBlock
and a thread does it.
"""

from __future__ import annotations

import os
from typing import Sequence

from ..core.chunks import ChunkRef, ChunkStore, runs, verify
from ..core.stores.local import LocalStore
from ..errors import IntegrityError
from ..fs import mountinfo
from .nowait import PageCacheReads, WouldBlock

# File systems whose files are not on this machine's disks: a local store there is
# cached like a remote one. FUSE file systems (sshfs, gcsfuse, s3fs, rclone...) count
# too, except fuseblk (a local block device, e.g. ntfs-3g).
NETWORK_FS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs",
                        "lustre", "gpfs", "afs", "beegfs", "davfs", "ncpfs", "ocfs2", "gfs2"})


def reads_in_place(store: object) -> bool:
    """Whether a store's chunks are read in place: a local store on a local file system."""
    if not isinstance(store, LocalStore):
        return False
    fstype = _fstype(os.path.realpath(store.root))
    return not (fstype in NETWORK_FS or fstype.startswith("fuse.") or fstype == "fuse")


def _fstype(path: str) -> str:
    """The type of the file system holding `path` (the longest mount point above it)."""
    best, fstype = -1, ""
    try:
        entries = mountinfo.mounts()
    except OSError:
        return ""
    for m in entries:
        mp = m.mountpoint.rstrip("/") + "/"
        if (path + "/").startswith(mp) and len(mp) >= best:
            best, fstype = len(mp), m.fstype
    return fstype


class InPlaceReader:
    """Implements CachedChunkReader's interface over a local store; thread-safe."""

    cache = None  # nothing is copied into the block cache

    def __init__(self, chunks: ChunkStore):
        if not isinstance(chunks.store, LocalStore):
            raise TypeError("only a local store's chunks can be read in place")
        self.chunks = chunks
        self.store: LocalStore = chunks.store
        self._reads = PageCacheReads()

    def read_chunk(self, ref: ChunkRef) -> bytes:
        return self.read_chunks([ref])[0]

    def read_chunks(self, refs: Sequence[ChunkRef]) -> list[bytes]:
        """The verified bytes of each chunk, in order."""
        buf = self.read_cached(refs)
        view, out, at = memoryview(buf), [], 0
        for ref in refs:
            out.append(bytes(view[at:at + ref.size]))
            at += ref.size
        return out

    def read_range(self, ref: ChunkRef, start: int, end: int, nowait: bool = False) -> bytes:
        """Bytes [start, end) of the chunk: the whole chunk is read, to be checked."""
        if not 0 <= start <= end <= ref.size:
            raise ValueError(f"range [{start}, {end}) is outside a chunk of {ref.size} bytes")
        return bytes(memoryview(self.read_cached([ref], nowait))[start:end])

    def read_cached(self, refs: Sequence[ChunkRef], nowait: bool = False) -> bytearray:
        """The verified bytes of the chunks, one after another in one buffer: a run of
        neighbours in a pack read with one preadv straight into it. With `nowait` (the
        event loop), WouldBlock unless the page cache holds every byte."""
        if nowait and not self._reads.supported:
            raise WouldBlock
        buf = bytearray(sum(ref.size for ref in refs))
        view, at = memoryview(buf), 0
        for run in runs(refs):
            length = sum(ref.size for ref in run)
            self._read_run(run, view[at:at + length], nowait)
            at += length
        return buf

    def _read_run(self, run: list[ChunkRef], view: memoryview, nowait: bool) -> None:
        # The chunks of a run may have gaps between them in the pack (core.chunks.runs):
        # those bytes are read into a scratch buffer, so one call reads the whole run.
        parts, at, pos = [], 0, run[0].offset
        for ref in run:
            if ref.offset > pos:
                parts.append(memoryview(bytearray(ref.offset - pos)))
            parts.append(view[at:at + ref.size])
            at += ref.size
            pos = ref.offset + ref.size
        got = self._preadv(run[0], parts, nowait)  # with nowait, all of it or WouldBlock
        at = 0
        for ref in run:
            if ref.offset + ref.size - run[0].offset > got:
                where = f" at offset {ref.offset} of pack {ref.pack}" if ref.pack else ""
                raise IntegrityError(f"chunk {ref.addr}{where} is corrupt in the store (the "
                                     "object holding it ends before it)")
            verify(ref, view[at:at + ref.size])
            at += ref.size

    def _preadv(self, first: ChunkRef, parts: list[memoryview], nowait: bool) -> int:
        key = self.chunks.key_of(first)
        try:
            fd = os.open(self.store.path(key), os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            what = f"pack {first.pack} holding chunk {first.addr}" if first.pack \
                else f"chunk {first.addr}"
            raise IntegrityError(f"{what} is missing from the store") from None
        except OSError as e:
            raise self.store.failed(key, e) from None
        try:
            return self._reads.preadv(fd, parts, first.offset, nowait)
        except OSError as e:
            raise self.store.failed(key, e) from None
        finally:
            os.close(fd)

    def fill(self, refs: Sequence[ChunkRef]) -> None:
        """Nothing to fetch: the chunks are on a local disk."""

    def prefetch(self, refs: Sequence[ChunkRef]) -> None:
        """Ask the kernel to start reading the chunks' byte ranges (one fadvise per run),
        so that the reads that follow find them in memory, on the event loop."""
        for run in runs(refs):
            try:
                fd = os.open(self.store.path(self.chunks.key_of(run[0])), os.O_RDONLY)
            except OSError:
                continue  # the read that needs it reports it
            try:
                os.posix_fadvise(fd, run[0].offset, run[-1].offset + run[-1].size
                                 - run[0].offset, os.POSIX_FADV_WILLNEED)
            finally:
                os.close(fd)

    def close(self) -> None:
        pass
