"""tests/data/overlay-v1: an overlay written by schema-1 code (its make.py says how), for
the tests of the schema migration."""

from __future__ import annotations

import os
import shutil
import sqlite3

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
