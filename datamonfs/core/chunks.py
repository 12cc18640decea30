"""Content-defined chunking and the one place that maps a chunk address to its bytes.

Chunks are cut with FastCDC and addressed by their BLAKE3 hash. `ChunkStore` is
the only code that knows where a chunk's bytes live in the store, so packing
small chunks into pack objects later touches this file alone.
"""

from __future__ import annotations

from typing import BinaryIO, Iterator, Protocol

from pyfastcdc.cy import FastCDC

from ..errors import IntegrityError, KeyNotFound
from .encoding import address
from .stores.base import Store

AVG_CHUNK = 1 << 20  # FastCDC's mean is avg + min: about 1.25 MiB
MIN_CHUNK = AVG_CHUNK // 4
MAX_CHUNK = AVG_CHUNK * 4


def cut(stream: BinaryIO) -> Iterator[bytes]:
    """Yield the chunks of a stream, reading it with bounded memory."""
    head = stream.read(MIN_CHUNK + 1)
    if len(head) <= MIN_CHUNK:  # FastCDC never cuts below MIN_CHUNK: one chunk, no set-up cost
        if head:
            yield head
        return
    cdc = FastCDC(AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)
    for chunk in cdc.cut_stream(_Prepended(head, stream)):
        yield bytes(chunk.data)  # the view dies at the next chunk


class _Prepended:
    """A stream that replays bytes already read before the rest of `stream`."""

    def __init__(self, head: bytes, stream: BinaryIO):
        self.head, self.stream = head, stream

    def read(self, n: int) -> bytes:
        if self.head:
            data, self.head = self.head[:n], self.head[n:]
            return data
        return self.stream.read(n)


class ChunkReader(Protocol):
    """What readers of file content need; the block cache implements it too."""

    def read_chunk(self, addr: str, size: int) -> bytes: ...


class ChunkStore:
    def __init__(self, store: Store):
        self.store = store

    @staticmethod
    def key(addr: str) -> str:
        return f"chunk/{addr[:2]}/{addr}"

    def put(self, addr: str, data: bytes) -> bool:
        """Store a chunk unless present; True when its bytes were uploaded."""
        if self.store.exists(self.key(addr)):
            return False
        self.store.put(self.key(addr), data)
        return True

    def read_chunk(self, addr: str, size: int) -> bytes:
        """The verified bytes of a chunk: a mismatch is an IntegrityError, never data."""
        try:
            data = self.store.get(self.key(addr))
        except KeyNotFound:
            raise IntegrityError(f"chunk {addr} is missing from the store") from None
        if len(data) != size or address(data) != addr:
            raise IntegrityError(f"chunk {addr} is corrupt in the store (its bytes do not match its address)")
        return data
