"""The overlay's SQLite connection: transactions, group commits, durability, meta values.

One database per writable mount (stdlib sqlite3, WAL; its tables are in
schema.py). Every change (a create, a write's extent, a setattr) is one
transaction of its own in the sense that it is made whole or not at all (a
SAVEPOINT), but changes are committed to SQLite in groups: the first change opens
a group (BEGIN IMMEDIATE) and `flush` commits it, at the latest GROUP_SECONDS
later (a thread of this module), and at once on fsync (`sync_log`), `sync`, a
bundle commit and `close`. A SIGKILL therefore leaves the database as it was
after some earlier change, all changes before it included and none after it,
never half of one; it loses the changes of the group still open (at most
GROUP_SECONDS of them) unless they were fsynced. Committing a group costs one
write of its pages to the WAL; committing every change alone cost a WAL write
(and a lock round) per change, most of the time of a small file's creation
(docs/ARCHITECTURE.md, "Writable mounts").

Commits run with synchronous=NORMAL: a committed group survives the process
dying (it is in the WAL, in the page cache); `sync_log` (what fsync on a file of
the mount does) and `sync` make everything committed so far survive a power loss
too.

In-memory copies of rows (the overlay's nodes) are changed inside a transaction
through `Tx.touch` and `Tx.set`: when the transaction fails (a full disk), they are
put back as they were and its savepoint is rolled back, so memory never disagrees
with the database. Their rows are written by the `write_dirty` hook the database is
opened with (nodes.write_dirty), just before the savepoint is released. What must
wait until the rows are committed (deleting a data file the rows named) is
`Tx.once_committed`: it runs when the group commits. Should SQLite ever roll back a
whole group itself (it may, on a full disk or an I/O error), memory would disagree
with the database: the overlay then refuses every further change (EIO), as if the
process had been killed, and a new mount resumes from what was committed.

`lock` guards the connection; the overlay uses it as its own lock, so that a group
is never committed in the middle of a change.

SQL here: transactions and the `meta` table. The other tables' statements are all
in nodes.py and extents.py.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from ..vfs import FsError
from .schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION, MetaRow, columns, params

log = logging.getLogger(__name__)

# How long a change may wait for its group to be committed (what a SIGKILL may lose of
# changes not fsynced). Short against the writeback cache's 30 s of dirty pages.
GROUP_SECONDS = 0.1


def errno_of(e: sqlite3.Error) -> int:
    code = getattr(e, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL or "disk is full" in str(e):
        return errno.ENOSPC
    return errno.EIO


class Tx:
    """One change: touched objects are restored if it fails; `after` runs when it is made,
    `once_committed` when its group is committed."""

    def __init__(self) -> None:
        self._saved: dict[int, tuple[object, dict]] = {}
        self._undo: list[Callable[[], None]] = []
        self._after: list[Callable[[], None]] = []
        self._committed: list[Callable[[], None]] = []
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
        """Run `fn` once this change is made (memory that follows the rows)."""
        self._after.append(fn)

    def once_committed(self, fn: Callable[[], None]) -> None:
        """Run `fn` (under the lock) once this change is committed, so that a crash never
        finds rows naming what `fn` removed (a data file, bytes past a new end)."""
        self._committed.append(fn)

    def _rollback(self) -> None:
        for obj, state in self._saved.values():
            for k, v in state.items():
                setattr(obj, k, v)
        for fn in reversed(self._undo):
            fn()


WriteDirty = Callable[["OverlayDB", list], None]

_PUT_META = f"INSERT OR REPLACE INTO meta ({columns(MetaRow)}) VALUES ({params(MetaRow)})"


class OverlayDB:
    def __init__(self, path: str, write_dirty: WriteDirty | None = None,
                 group_seconds: float = 0.0):
        """`write_dirty(db, objects)` writes the rows of the objects a transaction
        touched, inside it; without one, a transaction may touch nothing. With
        `group_seconds`, changes are committed in groups at most that old (a thread
        commits them); without, each change is committed when it is made."""
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
        self.lock = threading.RLock()
        self.group_seconds = group_seconds
        self._opened: float | None = None  # when the open group began (monotonic)
        self._armed = False  # the committer is waiting for a group to come due
        self._changes = 0  # in the open group
        self._on_commit: list[Callable[[], None]] = []
        self.broken: str | None = None  # why changes are refused (a group was lost)
        self._closing = False
        self._wake = threading.Condition(self.lock)
        self._committer: threading.Thread | None = None
        if group_seconds:
            self._committer = threading.Thread(target=self._commit_groups, daemon=True,
                                               name="overlay-group-commit")
            self._committer.start()

    @contextmanager
    def tx(self) -> Iterator[Tx]:
        """A change, made whole or not at all, in the open group (one is opened if none
        is). Transactions do not nest: one begun inside another is a RuntimeError (so a
        change is never half of an outer one)."""
        with self.lock:
            if self._in_tx:
                raise RuntimeError("nested overlay transaction")
            if self.broken:
                raise FsError(errno.EIO, self.broken)
            tx = Tx()
            self._in_tx = True
            try:
                try:
                    if not self.conn.in_transaction:
                        self.conn.execute("BEGIN IMMEDIATE")
                        self._opened = time.monotonic()
                        if not self._armed:  # else it wakes up for an older group anyway
                            self._wake.notify()
                    self.conn.execute("SAVEPOINT change")
                    yield tx
                    if tx.dirty:
                        if self.write_dirty is None:
                            raise RuntimeError("overlay database opened without a row writer")
                        self.write_dirty(self, list(tx.dirty.values()))
                    self.conn.execute("RELEASE change")
                except BaseException as e:
                    tx._rollback()
                    self._roll_back_change()
                    if isinstance(e, sqlite3.Error):
                        raise FsError(errno_of(e), f"overlay database: {e}") from None
                    raise
            finally:
                self._in_tx = False
            self._changes += 1
            self._on_commit += tx._committed
            for fn in tx._after:
                fn()
            if not self.group_seconds:
                self.flush()

    def _roll_back_change(self) -> None:
        """Undo a failed change's statements, keeping the group's earlier changes."""
        try:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK TO change")
                self.conn.execute("RELEASE change")
                return
        except sqlite3.Error:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        self._group_lost("a failed change took its group with it")

    def _group_lost(self, why: str) -> None:
        self._opened = None
        self._on_commit = []
        if self._changes:  # memory holds changes the database no longer has
            self.broken = f"overlay database: {why}; remount to resume from the last commit"
            log.error("%s: %s", self.path, self.broken)
        self._changes = 0

    def flush(self) -> None:
        """Commit the open group (nothing when none is open), then run what waited for it."""
        if not self.conn.in_transaction:
            return  # nothing to commit: no need to wait for the lock
        with self.lock:
            if not self.conn.in_transaction:
                return
            try:
                self.conn.execute("COMMIT")
            except sqlite3.Error as e:
                if not self.conn.in_transaction:
                    self._group_lost(str(e))
                raise FsError(errno_of(e), f"overlay database: {e}") from None
            done, self._on_commit = self._on_commit, []
            self._opened, self._changes = None, 0
            for fn in done:
                try:
                    fn()
                except OSError as e:  # a data file left behind: the next open deletes it
                    log.warning("%s: after a commit: %s", self.path, e)

    def _commit_groups(self) -> None:
        """The committer thread: each group is committed GROUP_SECONDS after it opened."""
        with self.lock:
            while not self._closing:
                if self._opened is None:
                    self._wake.wait()
                    continue
                due = self._opened + self.group_seconds - time.monotonic()
                if due > 0:
                    self._armed = True
                    self._wake.wait(due)
                    self._armed = False
                    continue
                try:
                    self.flush()
                except Exception as e:  # a full disk, say: tried again a group later
                    log.warning("%s: committing changes failed: %s", self.path, e)
                    self._wake.wait(self.group_seconds)

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
        """Make every change so far durable, holding the connection only to commit the
        open group: in WAL mode a commit has written its frames to the -wal file
        (synchronous=NORMAL just does not fsync it), and checkpoints sync the database
        before they reuse the log."""
        self.flush()
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
        """Make every change so far durable (the WAL is fsynced by a FULL commit)."""
        with self.lock:
            self.flush()
            self._sync()

    def _sync(self) -> None:
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
        """Commit the open group, stop the committer and close the connection."""
        with self.lock:
            self._closing = True
            self._wake.notify()
            try:
                self.flush()
            except FsError as e:
                log.error("%s: changes not committed at close: %s", self.path, e)
        if self._committer is not None and self._committer is not threading.current_thread():
            self._committer.join()
        try:
            self.conn.close()
        except sqlite3.Error:
            pass
