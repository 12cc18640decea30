"""Content-defined chunking, chunk references, and the one place that maps a chunk to
the store bytes that hold it.

Chunks are cut with FastCDC and addressed by their BLAKE3 hash. A `ChunkRef` says
where a chunk's bytes live: a loose chunk of format 1 has a key of its own
(`chunk/AB/ADDR`); a chunk of format 2 is a byte range of a pack (`pack/AB/ID`,
see packs.py). `ChunkStore` is the only code that turns a reference into store
keys and ranges, and it verifies every chunk it returns against its address.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import cached_property
from typing import BinaryIO, Iterable, Iterator, NamedTuple, Protocol, Sequence

from pyfastcdc.cy import FastCDC

from ..errors import IntegrityError, KeyNotFound
from .encoding import address
from .stores.base import Store

KiB, MiB = 1 << 10, 1 << 20


@dataclass(frozen=True)
class Cutting:
    """FastCDC's parameters (the real mean chunk is about avg + min)."""

    min: int
    avg: int
    max: int

    @cached_property
    def _chunker(self) -> FastCDC:
        return FastCDC(self.avg, min_size=self.min, max_size=self.max)

    def chunker(self) -> FastCDC:
        """A FastCDC of these parameters: one, shared (it holds only them; each cut of a
        buffer or a stream has its own state)."""
        return self._chunker


V1 = Cutting(256 * KiB, 1 * MiB, 4 * MiB)  # format 1; still used to re-cut files cut that way
V2 = Cutting(16 * KiB, 64 * KiB, 256 * KiB)  # new content (docs/ARCHITECTURE.md: the figures)
MIN_CHUNK, AVG_CHUNK, MAX_CHUNK = V2.min, V2.avg, V2.max
LARGEST_CHUNK = V1.max  # the longest chunk a datamonfs writer cuts
WHOLE = 1 * MiB  # a stream shorter than this is read whole and cut in memory


def cut(stream: BinaryIO, cutting: Cutting = V2) -> Iterator[bytes | memoryview]:
    """Yield the chunks of a stream, reading it with bounded memory.

    Most files are small: one shorter than WHOLE is read with a read or two and cut in
    memory (`cut_bytes`); a streaming cut costs a 512 KiB buffer, several reads and a
    copy of each chunk. Both ways cut at the same places."""
    head, ended = read_up_to(stream, WHOLE)
    if ended:
        yield from cut_bytes(head, cutting)
        return
    for chunk in cutting.chunker().cut_stream(_Prepended(head, stream)):
        yield bytes(chunk.data)  # the view dies at the next chunk


def cut_bytes(data: bytes, cutting: Cutting = V2) -> Iterator[bytes | memoryview]:
    """The chunks of bytes in memory: views of them."""
    if len(data) <= cutting.min:  # FastCDC never cuts below the minimum: no set-up
        if data:
            yield data
        return
    for chunk in cutting.chunker().cut_buf(data):
        yield chunk.data


def read_up_to(stream: BinaryIO, n: int) -> tuple[bytes, bool]:
    """Up to n bytes of a stream, and whether it ended before n. A read that returns less
    than asked is not taken for the end (sockets and pipes do that): only an empty one."""
    data = stream.read(n)
    if not data:
        return b"", True
    parts = [data]
    size = len(data)
    while size < n:
        data = stream.read(n - size)
        if not data:
            break
        parts.append(data)
        size += len(data)
    return (parts[0] if len(parts) == 1 else b"".join(parts)), size < n


def cutting_of(chunks: Iterable[ChunkRef]) -> Cutting:
    """The parameters a file was cut with, so that re-cutting part of it finds its old cut
    points again: V1's when a chunk is longer than V2 ever cuts."""
    return V1 if any(c.size > V2.max for c in chunks) else V2


class _Prepended:
    """A stream that replays bytes already read before the rest of `stream`."""

    def __init__(self, head: bytes, stream: BinaryIO):
        self.head, self.stream = head, stream

    def read(self, n: int) -> bytes:
        if self.head:
            data, self.head = self.head[:n], self.head[n:]
            return data
        return self.stream.read(n)


class ChunkRef(NamedTuple):
    """A chunk of a file: its address and length, and where its bytes are."""

    addr: str
    size: int
    pack: str | None = None  # the pack holding it; None: a loose chunk (format 1)
    offset: int = 0  # where its bytes start in the pack

    @property
    def content(self) -> tuple[str, int]:
        """What the chunk is, whatever its location: two references to the same bytes
        may name different packs."""
        return self.addr, self.size


def same_content(a: Sequence[ChunkRef], b: Sequence[ChunkRef]) -> bool:
    return len(a) == len(b) and all(x.content == y.content for x, y in zip(a, b))


MAX_RUN = 4 * MiB  # bytes one ranged read of a pack may fetch
MAX_GAP = 64 * KiB  # bytes between two wanted chunks of a pack read anyway, to save a request


def runs(refs: Iterable[ChunkRef], max_bytes: int = MAX_RUN) -> Iterator[list[ChunkRef]]:
    """Consecutive references grouped into runs that one request can fetch: chunks of one
    pack at increasing offsets, with gaps of at most MAX_GAP, spanning at most
    `max_bytes`. A loose chunk is a run of its own."""
    run: list[ChunkRef] = []
    for ref in refs:
        if run and (ref.pack is None or ref.pack != run[0].pack
                    or not 0 <= ref.offset - (run[-1].offset + run[-1].size) <= MAX_GAP
                    or ref.offset + ref.size - run[0].offset > max_bytes):
            yield run
            run = []
        run.append(ref)
    if run:
        yield run


def take_batch(queue: deque[ChunkRef], max_bytes: int = MAX_RUN) -> list[ChunkRef]:
    """Take from the front of `queue` the chunks to read together: consecutive, of at most
    `max_bytes` (a longer chunk on its own). Readers that go through many files' chunks
    in order (download, prefetch) read one batch per call, so that the neighbouring chunks
    of small files are fetched with one request."""
    batch, size = [], 0
    while queue and (not batch or size + queue[0].size <= max_bytes):
        ref = queue.popleft()
        batch.append(ref)
        size += ref.size
    return batch


class ChunkReader(Protocol):
    """What readers of file content need; the block cache implements it too."""

    def read_chunk(self, ref: ChunkRef) -> bytes: ...

    def read_chunks(self, refs: Sequence[ChunkRef]) -> list[bytes]: ...


class ChunkStore:
    """Where chunk bytes live in a store: the keys of loose chunks, packs and their indexes,
    and verified reads of single chunks and of runs (one ranged read each)."""

    def __init__(self, store: Store):
        self.store = store

    @staticmethod
    def loose_key(addr: str) -> str:
        return f"chunk/{addr[:2]}/{addr}"

    @staticmethod
    def pack_key(pack: str) -> str:
        return f"pack/{pack[:2]}/{pack}"

    @staticmethod
    def index_key(pack: str) -> str:
        return f"packidx/{pack[:2]}/{pack}"

    def read_chunk(self, ref: ChunkRef) -> bytes:
        """The verified bytes of a chunk: a mismatch is an IntegrityError, never data."""
        return self.read_run([ref])[0]

    def read_chunks(self, refs: Sequence[ChunkRef]) -> list[bytes]:
        out: list[bytes] = []
        for run in runs(refs):
            out += self.read_run(run)
        return out

    def key_of(self, ref: ChunkRef) -> str:
        """The store key of the object holding a chunk (at ref.offset)."""
        return self.loose_key(ref.addr) if ref.pack is None else self.pack_key(ref.pack)

    def read_run(self, run: Sequence[ChunkRef]) -> list[bytes]:
        """The verified bytes of each chunk of a run (see `runs`), fetched with one request."""
        first = run[0]
        if first.pack is None:
            if len(run) != 1:
                raise ValueError("a loose chunk is a run of its own")
            return [_verified(first, self._get(self.key_of(first), first))]
        start, end = first.offset, run[-1].offset + run[-1].size
        data = self._get(self.key_of(first), first, start, end - start)
        view = memoryview(data)
        return [_verified(ref, view[ref.offset - start:ref.offset - start + ref.size])
                for ref in run]

    def _get(self, key: str, ref: ChunkRef, start: int = 0, length: int | None = None) -> bytes:
        try:
            if length is None:
                return self.store.get(key)
            return self.store.get_range(key, start, length)
        except KeyNotFound:
            what = f"pack {ref.pack} holding chunk {ref.addr}" if ref.pack else f"chunk {ref.addr}"
            raise IntegrityError(f"{what} is missing from the store") from None


def verify(ref: ChunkRef, data: bytes | memoryview | bytearray) -> None:
    """An IntegrityError unless `data` are the chunk's bytes (its length and address)."""
    if len(data) != ref.size or address(data) != ref.addr:
        where = f" at offset {ref.offset} of pack {ref.pack}" if ref.pack else ""
        raise IntegrityError(f"chunk {ref.addr}{where} is corrupt in the store (its bytes do "
                             "not match its address)")


def _verified(ref: ChunkRef, data: bytes | memoryview) -> bytes:
    verify(ref, data)
    return data if isinstance(data, bytes) else bytes(data)
