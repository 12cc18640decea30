"""The written ranges of staged files: the `extents` table (schema.py).

A file's ranges are disjoint and never adjacent: StagedData.record (staged.py)
merges what a write overlaps or touches, with `touching` and `replace` here. A
range's bytes are in its row (`data`) or in the file's data file. With nodes.py and
db.py, the only SQL of the overlay.
"""

from __future__ import annotations

from .db import OverlayDB
from .schema import ExtentRow, columns, params

_PUT_EXTENT = f"INSERT INTO extents ({columns(ExtentRow)}) VALUES ({params(ExtentRow)})"

Range = tuple[int, int, "bytes | None"]  # start, end, the bytes when they are in the row


class Extents:
    """The written ranges of staged files (the `extents` table)."""

    def __init__(self, db: OverlayDB):
        self.db = db

    def touching(self, ino: int, start: int, end: int) -> list[Range]:
        """The ranges [start, end) overlaps or touches, in order."""
        c = self.db.conn
        rows = []
        row = c.execute("SELECT start, end, data FROM extents WHERE ino = ? AND start < ? "
                        "ORDER BY start DESC LIMIT 1", (ino, start)).fetchone()
        if row is not None and row[1] >= start:
            rows.append(row)
        rows += c.execute("SELECT start, end, data FROM extents WHERE ino = ? AND start >= ? "
                          "AND start <= ? ORDER BY start", (ino, start, end)).fetchall()
        return rows

    def replace(self, ino: int, start: int, end: int, data: bytes | None) -> None:
        """Record [start, end) in place of the ranges it covers. Inside a transaction."""
        c = self.db.conn
        c.execute("DELETE FROM extents WHERE ino = ? AND start >= ? AND start < ?",
                  (ino, start, end))
        c.execute(_PUT_EXTENT, ExtentRow(ino, start, end, data)._asdict())

    def truncate(self, ino: int, size: int) -> None:
        """Forget written bytes at and past `size`. Inside a transaction."""
        c = self.db.conn
        c.execute("DELETE FROM extents WHERE ino = ? AND start >= ?", (ino, size))
        c.execute("UPDATE extents SET end = ?1, data = substr(data, 1, ?1 - start) "
                  "WHERE ino = ?2 AND start < ?1 AND end > ?1", (size, ino))

    def within(self, ino: int, start: int, end: int) -> list[Range]:
        """Written ranges overlapping [start, end), clipped to it (their bytes too)."""
        rows = []
        first = self.db.one("SELECT start, end, data FROM extents WHERE ino = ? AND start <= ? "
                            "ORDER BY start DESC LIMIT 1", (ino, start))
        if first is not None and first[1] > start:
            rows.append(first)
        rows += self.db.all("SELECT start, end, data FROM extents WHERE ino = ? AND start > ? "
                            "AND start < ? ORDER BY start", (ino, start, end))
        out = []
        for a, b, data in rows:
            lo, hi = max(a, start), min(b, end)
            out.append((lo, hi, None if data is None else data[lo - a:hi - a]))
        return out

    def in_rows(self, ino: int) -> list[Range]:
        """A file's ranges whose bytes are in their rows."""
        return self.db.all("SELECT start, end, data FROM extents WHERE ino = ? AND "
                           "data IS NOT NULL ORDER BY start", (ino,))

    def move_to_file(self, ino: int) -> None:
        """Say a file's bytes are all in its data file now. Inside a transaction."""
        self.db.conn.execute("UPDATE extents SET data = NULL WHERE ino = ? AND "
                             "data IS NOT NULL", (ino,))

    def in_file(self, ino: int) -> bool:
        """Whether some of a file's bytes are in its data file."""
        return self.db.one("SELECT 1 FROM extents WHERE ino = ? AND data IS NULL LIMIT 1",
                           (ino,)) is not None

    def row_bytes(self, ino: int | None = None) -> int:
        """Bytes kept in rows: a file's, or (None) every file's."""
        if ino is None:
            row = self.db.one("SELECT sum(length(data)) FROM extents")
        else:
            row = self.db.one("SELECT sum(length(data)) FROM extents WHERE ino = ?", (ino,))
        return row[0] or 0

    def span(self, ino: int) -> tuple[int, int] | None:
        """From the first written byte to the end of the last written range."""
        row = self.db.one("SELECT min(start), max(end) FROM extents WHERE ino = ?", (ino,))
        return None if row[0] is None else (row[0], row[1])
