"""An overlay of a schema newer than this code's is refused, untouched (tests/integration/
test_overlay_migration.py: a schema-1 overlay is migrated when opened)."""

from __future__ import annotations

import os
import shutil
import sqlite3

import pytest

from datamonfs.core.repository import Repository
from datamonfs.core.stores import open_store
from datamonfs.fs.overlay import SCHEMA_VERSION, Overlay
from datamonfs.fs.vfs import FsError

V1 = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                  "overlay-v1")


@pytest.fixture
def v1(tmp_path):
    shutil.copytree(V1, tmp_path / "v1", ignore=shutil.ignore_patterns("make.py"))
    return tmp_path / "v1"


def columns(db_path) -> set[str]:
    db = sqlite3.connect(db_path)
    try:
        return {row[1] for row in db.execute("PRAGMA table_info(nodes)")}
    finally:
        db.close()


def test_an_overlay_of_a_newer_schema_is_refused(v1):
    db = sqlite3.connect(v1 / "overlay" / "overlay.db")
    db.execute("UPDATE meta SET value = '99' WHERE key = 'version'")
    db.commit()
    db.close()
    repo = Repository(open_store("file://" + str(v1 / "store")))
    with pytest.raises(FsError) as e:
        Overlay(str(v1 / "overlay"), repo.trees, lambda chunks: None)
    assert "format 99" in str(e.value) and f"up to {SCHEMA_VERSION}" in str(e.value)
    assert "uid" not in columns(v1 / "overlay" / "overlay.db")  # untouched
