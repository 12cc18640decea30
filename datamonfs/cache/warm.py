"""Warming the cache with a bundle, or with its files matching a filter (core.globs)."""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator

from ..core.chunks import MAX_RUN, ChunkRef, take_batch
from ..core.globs import matcher, pruner
from ..core.model import FILE, Bundle, Entry
from ..core.repository import Repository
from .reader import CachedChunkReader


def files(repo: Repository, bundle: Bundle, pattern: str | None = None
          ) -> Iterator[tuple[str, Entry]]:
    """The files matching `pattern`, entering only directories that can hold one."""
    wanted = matcher(pattern)
    for path, entry in repo.walk(bundle, pruner(pattern)):
        if entry.kind == FILE and wanted(path):
            yield path, entry


def warm(repo: Repository, reader: CachedChunkReader, bundle: Bundle, pattern: str | None = None,
         progress: Callable[[int], None] | None = None, workers: int = 8) -> None:
    """Fetch into the cache every chunk of the files matching `pattern` not cached yet, in
    batches of neighbouring chunks (of one file or of many small ones)."""
    pending: deque = deque()
    queued: deque[ChunkRef] = deque()

    def settle_oldest() -> None:
        future, size = pending.popleft()
        future.result()
        if progress:
            progress(size)

    queued_bytes = 0

    def send() -> None:
        nonlocal queued_bytes
        batch = take_batch(queued)
        size = sum(r.size for r in batch)
        queued_bytes -= size
        pending.append((pool.submit(reader.fill, batch), size))
        if len(pending) >= 2 * workers:
            settle_oldest()

    with ThreadPoolExecutor(workers, thread_name_prefix="datamonfs-warm") as pool:
        for _, entry in files(repo, bundle, pattern):
            refs = repo.trees.chunks(entry)
            queued.extend(refs)
            queued_bytes += sum(r.size for r in refs)
            while queued_bytes > MAX_RUN:
                send()
        while queued:
            send()
        while pending:
            settle_oldest()
