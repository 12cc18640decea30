"""Warming the cache with a bundle, or with its files matching a filter (core.globs)."""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator

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
    """Fetch into the cache every chunk of the files matching `pattern` not cached yet."""
    pending: deque = deque()

    def settle_oldest() -> None:
        future, size = pending.popleft()
        future.result()
        if progress:
            progress(size)

    with ThreadPoolExecutor(workers, thread_name_prefix="datamonfs-warm") as pool:
        for _, entry in files(repo, bundle, pattern):
            for addr, size in repo.trees.chunks(entry):
                pending.append((pool.submit(reader.fill, addr, size), size))
                if len(pending) >= 2 * workers:
                    settle_oldest()
        while pending:
            settle_oldest()
