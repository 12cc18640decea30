"""The overlay's SQLite connection: transactions, durability and small meta values.

One database per writable mount (stdlib sqlite3, WAL; its tables are in
schema.py). Every namespace change is one transaction, so a SIGKILL leaves the
database as it was after the last committed change, never half of one. Commits
run with synchronous=NORMAL: a committed transaction survives the process dying
(it is in the WAL, in the page cache); `sync_log` (what fsync on a file of the
mount does) and `sync` make everything committed so far survive a power loss too.

In-memory copies of rows (the overlay's nodes) are changed inside a transaction
through `Tx.touch` and `Tx.set`: when the transaction fails (a full disk), they are
put back as they were, so memory never disagrees with the database. Their rows are
written by the `write_dirty` hook the database is opened with (nodes.write_dirty),
just before the transaction commits.

SQL here: transactions and the `meta` table. The other tables' statements are all
in nodes.py.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from ..vfs import FsError
from .schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION, MetaRow, columns, params


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

    def touch(self, obj: object) -> None:
        """`obj` (with __slots__) is about to change: restored if this transaction
        fails, its row written if it commits."""
        if id(obj) not in self._saved:
            self._saved[id(obj)] = (obj, {s: getattr(obj, s) for s in obj.__slots__})
        self.dirty[id(obj)] = obj

    def set(self, obj: object, **fields: Any) -> None:
        """Change fields of `obj` within this transaction (see `touch`)."""
        self.touch(obj)
        for k, v in fields.items():
            setattr(obj, k, v)

    def new(self, obj: object) -> None:
        """A new object whose row this transaction writes (nothing to restore)."""
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


WriteDirty = Callable[["OverlayDB", list], None]

_PUT_META = f"INSERT OR REPLACE INTO meta ({columns(MetaRow)}) VALUES ({params(MetaRow)})"


class OverlayDB:
    def __init__(self, path: str, write_dirty: WriteDirty | None = None):
        """`write_dirty(db, objects)` writes the rows of the objects a transaction
        touched, inside it; without one, a transaction may touch nothing."""
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
        self.write_dirty = write_dirty

    @contextmanager
    def tx(self) -> Iterator[Tx]:
        """A write transaction. Transactions do not nest: one begun inside another is
        a RuntimeError (so a change is never half of an outer one)."""
        if self._in_tx:
            raise RuntimeError("nested overlay transaction")
        tx = Tx()
        self._in_tx = True
        try:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                yield tx
                if tx.dirty:
                    if self.write_dirty is None:
                        raise RuntimeError("overlay database opened without a row writer")
                    self.write_dirty(self, list(tx.dirty.values()))
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

    def execute(self, sql: str, args: tuple | dict = ()) -> sqlite3.Cursor:
        try:
            return self.conn.execute(sql, args)
        except sqlite3.Error as e:
            if self._in_tx:
                raise
            raise FsError(errno_of(e), f"overlay database: {e}") from None

    def one(self, sql: str, args: tuple | dict = ()) -> tuple | None:
        return self.execute(sql, args).fetchone()

    def all(self, sql: str, args: tuple | dict = ()) -> list[tuple]:
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
                self.conn.execute(_PUT_META, MetaRow("synced", "1")._asdict())
                self.conn.execute("COMMIT")
            finally:
                self.conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as e:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise FsError(errno_of(e), f"overlay database: {e}") from None

    def migrate(self) -> int | None:
        """Bring an overlay of an older schema to SCHEMA_VERSION, in one transaction, then
        sync; the version it had. A newer version than this code knows is left alone (the
        caller refuses it)."""
        version = self.get_meta("version")
        if not isinstance(version, int) or version >= SCHEMA_VERSION or version not in MIGRATIONS:
            return version
        with self.tx():
            for v in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[v]:
                    self.conn.execute(statement)
            self.set_meta("version", SCHEMA_VERSION)
        self.sync()
        return version

    # -- meta: small JSON values -------------------------------------------------

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.one("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value: Any) -> None:
        """Inside a transaction; None deletes the key."""
        if value is None:
            self.conn.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self.conn.execute(_PUT_META, MetaRow(key, json.dumps(value))._asdict())

    def close(self) -> None:
        try:
            self.conn.close()
        except sqlite3.Error:
            pass
