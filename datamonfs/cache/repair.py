"""Repair on open, done by a process that has the cache to itself.

What a process killed at any point can leave behind, and what becomes of it:

- a file in tmp/ (killed while writing a block file): deleted;
- a block file that no entry names (killed between the file's rename and the
  index commit, or between an eviction's commit and the file's unlink): deleted;
- a file entry whose file is missing or has the wrong size (files are renamed into
  place before their entry is committed, so only outside damage does this): dropped,
  with its chunks' entries;
- a chunk entry whose file has no entry, or that lies outside its file: dropped;
- the lru database and the size counter: rebuilt from the file entries.

Block contents are not hashed here, which would read the whole cache: every
read checks the chunk's xxh3 digests instead.
"""

from __future__ import annotations

import os

from .index import CacheIndex, FileRecord, Record, log, lru_key


def repair(index: CacheIndex) -> None:
    files = index.files
    temps = _remove_all(files.tmp_dir, keep=set())
    kept: dict[bytes, int] = {}  # token -> bytes
    dropped = 0
    total = 0
    with index.env.begin(write=True) as txn:
        txn.drop(index.lru_db, delete=False)
        for token, raw in list(txn.cursor(db=index.files_db)):
            frec = FileRecord.unpack(raw)
            if len(token) != 8 or frec is None or _size(files.block_path(token)) != frec.bytes:
                txn.delete(token, db=index.files_db)
                dropped += 1
                continue
            txn.put(lru_key(frec.used, token), b"", db=index.lru_db)
            kept[token] = frec.bytes
            total += frec.bytes
        for key, raw in list(txn.cursor(db=index.blocks_db)):
            rec = Record.unpack(raw)
            if rec is None or rec.offset + rec.size > kept.get(rec.token, -1):
                txn.delete(key, db=index.blocks_db)
        index.set_counter(txn, b"size", total)
    names = {token.hex() for token in kept}
    orphans = 0
    for sub in os.listdir(files.blocks_dir):
        path = os.path.join(files.blocks_dir, sub)
        orphans += _remove_all(path, names) if os.path.isdir(path) else _remove(path)
    if temps or orphans or dropped:
        log.info("cache %s repaired: %d temp files and %d unindexed blocks removed, %d block "
                 "files without their file dropped", files.directory, temps, orphans, dropped)


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return -1


def _remove_all(directory: str, keep: set[str]) -> int:
    return sum(_remove(os.path.join(directory, name))
               for name in os.listdir(directory) if name not in keep)


def _remove(path: str) -> int:
    try:
        os.unlink(path)
        return 1
    except OSError:
        return 0
