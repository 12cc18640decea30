"""An overlay of a schema newer than this code's is refused, untouched (tests/integration/
test_overlay_migration.py: a schema-1 overlay is migrated when opened)."""

from __future__ import annotations

import pathlib
import sqlite3

import pytest
from support.overlays import copy_v1, node_columns

from datamonfs.core.repository import Repository
from datamonfs.core.stores import open_store
from datamonfs.fs.overlay import SCHEMA_VERSION, Overlay
from datamonfs.fs.vfs import FsError


@pytest.fixture
def v1(tmp_path):
    return pathlib.Path(copy_v1(tmp_path))


def test_an_overlay_of_a_newer_schema_is_refused(v1):
    db = sqlite3.connect(v1 / "overlay" / "overlay.db")
    db.execute("UPDATE meta SET value = '99' WHERE key = 'version'")
    db.commit()
    db.close()
    repo = Repository(open_store("file://" + str(v1 / "store")))
    with pytest.raises(FsError) as e:
        Overlay(str(v1 / "overlay"), repo.trees, lambda chunks: None)
    assert "format 99" in str(e.value) and f"up to {SCHEMA_VERSION}" in str(e.value)
    assert "uid" not in node_columns(v1 / "overlay" / "overlay.db")  # untouched
