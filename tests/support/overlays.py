"""Overlays for the unit tests: one over a bundle whose content is read from the store
whole (no block cache), and tests/data/overlay-v1, an overlay written by schema-1 code (its
make.py says how), for the tests of the schema migration."""

from __future__ import annotations

import os
import shutil
import sqlite3

from datamonfs.fs.overlay import Overlay, OverlayInfo


class Content:
    """A base file's content reader over bytes (what the block cache's FileReader does)."""

    def __init__(self, repo, chunks):
        self.data = b"".join(repo.chunks.read_chunks(chunks))

    def read(self, offset, length):
        return self.data[offset:offset + length]


def one_file_base(tmp, size: int):
    """(repository, bundle): repo "r" in a local store under `tmp` whose bundle holds "f",
    `size` random bytes (seeded)."""
    import random

    from datamonfs.core import ingest
    from datamonfs.core.repository import Author, Repository
    from datamonfs.core.stores import open_store

    ada = Author("Ada", "ada@example.org")
    repo = Repository(open_store(str(tmp / "store")))
    repo.create_repo("r", "", ada)
    (tmp / "src").mkdir()
    (tmp / "src" / "f").write_bytes(random.Random(2).randbytes(size))
    bundle, _ = ingest.upload(repo, "r", str(tmp / "src"), "base", ada)
    return repo, bundle


def overlay_in(directory, repo, bundle=None) -> Overlay:
    """A new overlay in `directory` over `bundle` (or an empty branch) of repo "r"."""
    info = OverlayInfo("r", "main", bundle.id if bundle else "", bundle.tree if bundle else "",
                       "/nowhere", 0.0)
    return Overlay.create_in(str(directory), info, repo.trees,
                             lambda chunks: Content(repo, chunks))


V1 = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                  "overlay-v1")


def copy_v1(directory) -> str:
    """A copy of the schema-1 overlay and its store in `directory`/v1 (tests change it)."""
    dest = os.path.join(directory, "v1")
    shutil.copytree(V1, dest, ignore=shutil.ignore_patterns("make.py"))
    return dest


def node_columns(db_path) -> set[str]:
    """The columns of the overlay database's `nodes` table."""
    db = sqlite3.connect(db_path)
    try:
        return {row[1] for row in db.execute("PRAGMA table_info(nodes)")}
    finally:
        db.close()
