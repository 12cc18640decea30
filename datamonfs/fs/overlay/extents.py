"""The written ranges of staged files: the `extents` table (schema.py).

A file's ranges are disjoint and never adjacent: `add` merges what a write overlaps
or touches. With nodes.py and db.py, the only SQL of the overlay.
"""

from __future__ import annotations

from .db import OverlayDB
from .schema import ExtentRow, columns, params

_PUT_EXTENT = f"INSERT INTO extents ({columns(ExtentRow)}) VALUES ({params(ExtentRow)})"


class Extents:
    """The written ranges of staged files (the `extents` table)."""

    def __init__(self, db: OverlayDB):
        self.db = db

    def add(self, ino: int, start: int, end: int) -> None:
        """Record [start, end) as written, merged with what it overlaps or touches.
        Inside a transaction."""
        c = self.db.conn
        row = c.execute("SELECT start, end FROM extents WHERE ino = ? AND start <= ? "
                        "ORDER BY start DESC LIMIT 1", (ino, start)).fetchone()
        if row is not None and row[1] >= start:
            start, end = row[0], max(end, row[1])
        row = c.execute("SELECT max(end) FROM extents WHERE ino = ? AND start >= ? AND start <= ?",
                        (ino, start, end)).fetchone()
        if row[0] is not None:
            end = max(end, row[0])
        c.execute("DELETE FROM extents WHERE ino = ? AND start >= ? AND start <= ?",
                  (ino, start, end))
        c.execute(_PUT_EXTENT, ExtentRow(ino, start, end)._asdict())

    def truncate(self, ino: int, size: int) -> None:
        """Forget written bytes at and past `size`. Inside a transaction."""
        c = self.db.conn
        c.execute("DELETE FROM extents WHERE ino = ? AND start >= ?", (ino, size))
        c.execute("UPDATE extents SET end = ? WHERE ino = ? AND start < ? AND end > ?",
                  (size, ino, size, size))

    def within(self, ino: int, start: int, end: int) -> list[tuple[int, int]]:
        """Written ranges overlapping [start, end), clipped to it."""
        rows = []
        first = self.db.one("SELECT start, end FROM extents WHERE ino = ? AND start <= ? "
                            "ORDER BY start DESC LIMIT 1", (ino, start))
        if first is not None and first[1] > start:
            rows.append(first)
        rows += self.db.all("SELECT start, end FROM extents WHERE ino = ? AND start > ? "
                            "AND start < ? ORDER BY start", (ino, start, end))
        return [(max(a, start), min(b, end)) for a, b in rows]

    def span(self, ino: int) -> tuple[int, int] | None:
        """From the first written byte to the end of the last written range."""
        row = self.db.one("SELECT min(start), max(end) FROM extents WHERE ino = ?", (ino,))
        return None if row[0] is None else (row[0], row[1])
