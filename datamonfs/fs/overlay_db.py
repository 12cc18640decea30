"""The overlay's SQLite database: schema, transactions, and errors as errno values.

One database per writable mount (stdlib sqlite3, WAL). Every namespace change is
one transaction, so a SIGKILL leaves the database as it was after the last
committed change, never half of one. Commits run with synchronous=NORMAL: a
committed transaction survives the process dying (it is in the WAL, in the page
cache); `sync_log` (what fsync on a file of the mount does) and `sync` make
everything committed so far survive a power loss too.

In-memory copies of rows (the overlay's Node objects) are changed inside a
transaction through `Tx.touch`: when the transaction fails (a full disk), they
are put back as they were, so memory never disagrees with the database.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from .vfs import FsError

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- Every node that differs from the base tree, or lies on the path to one that does.
CREATE TABLE IF NOT EXISTS nodes (
    ino INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,                 -- file, dir, link
    mode INTEGER NOT NULL,
    mtime INTEGER NOT NULL,             -- ns
    ctime INTEGER NOT NULL,             -- ns
    size INTEGER NOT NULL,              -- files: bytes; links: target bytes
    target TEXT,                        -- links
    tree TEXT,                          -- dirs: the base tree its listing starts from
    origin TEXT,                        -- the base entry it started as (JSON), or NULL
    staged INTEGER NOT NULL DEFAULT 0,  -- files: written ranges live in data/INO
    base_limit INTEGER NOT NULL DEFAULT 0,  -- files: origin bytes show below this offset
    nlink INTEGER NOT NULL DEFAULT 1    -- 0: unlinked but still open
);
-- A directory's names that differ from its base tree; ino NULL is a whiteout.
CREATE TABLE IF NOT EXISTS dirents (
    parent INTEGER NOT NULL, name BLOB NOT NULL, ino INTEGER,
    PRIMARY KEY (parent, name)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dirents_by_ino ON dirents (ino) WHERE ino IS NOT NULL;
-- Written byte ranges [start, end) of staged files: disjoint, never adjacent.
CREATE TABLE IF NOT EXISTS extents (
    ino INTEGER NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL,
    PRIMARY KEY (ino, start)) WITHOUT ROWID;
"""


def errno_of(e: sqlite3.Error) -> int:
    code = getattr(e, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL or "disk is full" in str(e):
        return errno.ENOSPC
    return errno.EIO


class Tx:
    """One transaction: touched objects are restored if it fails; `after` runs if it commits."""

    def __init__(self) -> None:
        self._saved: dict[int, tuple[object, dict]] = {}
        self._undo: list[Callable[[], None]] = []
        self._after: list[Callable[[], None]] = []
        self.dirty: dict[int, Any] = {}  # objects whose row must be written before commit

    def touch(self, obj: object, dirty: bool = True) -> None:
        if id(obj) not in self._saved:
            self._saved[id(obj)] = (obj, {s: getattr(obj, s) for s in obj.__slots__})
        if dirty:
            self.dirty[id(obj)] = obj

    def undo(self, fn: Callable[[], None]) -> None:
        self._undo.append(fn)

    def after(self, fn: Callable[[], None]) -> None:
        self._after.append(fn)

    def _rollback(self) -> None:
        for obj, state in self._saved.values():
            for k, v in state.items():
                setattr(obj, k, v)
        for fn in reversed(self._undo):
            fn()


class OverlayDB:
    def __init__(self, path: str):
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                    timeout=30)
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(SCHEMA)
        except sqlite3.Error as e:
            self.conn.close()
            raise FsError(errno_of(e), f"cannot open overlay database {path}: {e}") from None
        self._in_tx = False
        self.flush: Callable[[Tx], None] = lambda tx: None  # writes tx.dirty (set by the overlay)

    @contextmanager
    def tx(self) -> Iterator[Tx]:
        """A write transaction; nested uses join the outer one."""
        if self._in_tx:
            raise RuntimeError("nested overlay transaction")
        tx = Tx()
        self._in_tx = True
        try:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                yield tx
                self.flush(tx)
                self.conn.execute("COMMIT")
            except BaseException as e:
                tx._rollback()
                try:
                    self.conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                if isinstance(e, sqlite3.Error):
                    raise FsError(errno_of(e), f"overlay database: {e}") from None
                raise
        finally:
            self._in_tx = False
        for fn in tx._after:
            fn()

    def execute(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        try:
            return self.conn.execute(sql, args)
        except sqlite3.Error as e:
            if self._in_tx:
                raise
            raise FsError(errno_of(e), f"overlay database: {e}") from None

    def one(self, sql: str, args: tuple = ()) -> tuple | None:
        return self.execute(sql, args).fetchone()

    def all(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self.execute(sql, args).fetchall()

    def sync_log(self) -> None:
        """Make every committed transaction durable without taking the connection: in WAL
        mode a commit has written its frames to the -wal file (synchronous=NORMAL just does
        not fsync it), and checkpoints sync the database before they reuse the log."""
        for path in (self.path + "-wal", self.path):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def sync(self) -> None:
        """Make every committed transaction durable (the WAL is fsynced by a FULL commit)."""
        try:
            self.conn.execute("PRAGMA synchronous=FULL")
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('synced', '1')")
                self.conn.execute("COMMIT")
            finally:
                self.conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as e:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise FsError(errno_of(e), f"overlay database: {e}") from None

    # -- meta: small JSON values -------------------------------------------------

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.one("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value: Any) -> None:
        """Inside a transaction."""
        if value is None:
            self.conn.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def close(self) -> None:
        try:
            self.conn.close()
        except sqlite3.Error:
            pass
