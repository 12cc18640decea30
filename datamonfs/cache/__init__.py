"""The local block cache and metadata cache, shared by every datamonfs process.

    blocks, meta = open_cache(cfg)              # once per process (memoized)
    repo = open_repository(cfg)                 # a Repository reading metadata through
                                                # `meta`, knowing the store's packs (LMDB)
    repo, reader = cached_repository(cfg)       # that, and a ChunkReader through `blocks`
                                                # (in place for a local store: in_place.py)
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
from .in_place import InPlaceReader, reads_in_place
from .index import CacheIndex, clear_unused
from .locations import LmdbLocations, clear_locations
from .meta import LmdbMetaCache
from .reader import CachedChunkReader

__all__ = ["BlockCache", "CachedChunkReader", "FileReader", "InPlaceReader", "LmdbLocations",
           "LmdbMetaCache", "cached_repository", "clear_locations", "clear_unused", "open_cache",
           "open_repository"]

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


def open_repository(cfg: Config, store: StoreSpec | None = None, create: bool = False
                    ) -> Repository:
    """A Repository of `store` (default: cfg's) reading metadata through the cache, and
    keeping what it learns of the store's packs in it. Chunks and metadata objects are
    named by their content, so one cache serves every store; pack locations are kept per
    store. Only writers (`create`), or the default store, may create a local store's
    directory."""
    blocks, meta = open_cache(cfg)
    opened = open_store(store or cfg.store_spec(),
                        create=create or (store is None and cfg.store_is_default))
    return Repository(opened, meta_cache=meta, locations=LmdbLocations(blocks.index, opened.url))


def cached_repository(cfg: Config, store: StoreSpec | None = None, create: bool = False
                      ) -> tuple[Repository, CachedChunkReader | InPlaceReader]:
    """open_repository, and its chunk reader (close it when done): through the block
    cache, or, for a local store on a local file system, in place (in_place.py)."""
    repo = open_repository(cfg, store, create)
    if reads_in_place(repo.store):
        return repo, InPlaceReader(repo.chunks)
    return repo, CachedChunkReader(open_cache(cfg)[0], repo.chunks)


def _close_all() -> None:
    with _opened_lock:
        for blocks, _ in _opened.values():
            blocks.close()
            blocks.index.close()
        _opened.clear()
