"""The local block cache and metadata cache, shared by every datamonfs process.

    blocks, meta = open_cache(cfg)              # once per process (memoized)
    repo, reader = cached_repository(cfg)       # a Repository reading metadata through
                                                # `meta`, and a ChunkReader through `blocks`
    FileReader(reader, chunks).read(offset, n)  # ranges of one file, with read-ahead

Open the cache after forking, not before: an LMDB environment belongs to the
process that opened it.
"""

from __future__ import annotations

import atexit
import os
import threading

from ..core.config import Config
from ..core.repository import Repository
from ..core.stores import StoreSpec, open_store
from .blocks import BlockCache, default_limit
from .file_reader import FileReader
from .index import CacheIndex, clear_unused
from .meta import LmdbMetaCache
from .reader import CachedChunkReader

__all__ = ["BlockCache", "CachedChunkReader", "FileReader", "LmdbMetaCache", "cached_repository",
           "clear_unused", "open_cache"]

_opened: dict[str, tuple[BlockCache, LmdbMetaCache]] = {}
_opened_lock = threading.Lock()


def open_cache(cfg: Config) -> tuple[BlockCache, LmdbMetaCache]:
    """The block and metadata caches of cfg.cache_dir, opened once per process."""
    directory = os.path.realpath(cfg.cache_dir)
    with _opened_lock:
        if directory not in _opened:
            index = CacheIndex(directory)
            limit = cfg.cache_size or default_limit(index)
            if not _opened:
                atexit.register(_close_all)
            _opened[directory] = (BlockCache(index, limit), LmdbMetaCache(index))
        return _opened[directory]


def cached_repository(cfg: Config, store: StoreSpec | None = None, create: bool = False
                      ) -> tuple[Repository, CachedChunkReader]:
    """A Repository of `store` (default: cfg's) reading metadata through the cache, and a
    chunk reader through it (close the reader when done). Chunks and metadata objects
    are named by their content, so one cache serves every store."""
    blocks, meta = open_cache(cfg)
    spec = store or cfg.store_spec()
    repo = Repository(open_store(spec, create=create or (store is None and cfg.store_is_default)),
                      meta_cache=meta)
    return repo, CachedChunkReader(blocks, repo.chunks)


def _close_all() -> None:
    with _opened_lock:
        for blocks, _ in _opened.values():
            blocks.close()
            blocks.index.close()
        _opened.clear()
