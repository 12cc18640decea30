"""The overlay database's format: every table and column, and the rows code reads.

One SQLite database per writable mount, `overlay.db` beside `data/` (db.py opens
it). This module is the reference for what it holds. An overlay outlives the
daemon that wrote it (a newer datamonfs resumes it after an upgrade), so a change
to a table, or to what a column means, needs a new SCHEMA_VERSION and a migration
from the one before (MIGRATIONS, applied by db.OverlayDB.migrate when an overlay
is opened); an overlay of a newer version than this code knows is refused.

No code relies on the order of columns: each table has a row type below whose
field names are its column names, and every statement that reads or writes a
whole row names its columns from that type (`columns`, `params`).
"""

from __future__ import annotations

from typing import NamedTuple

SCHEMA_VERSION = 3  # meta 'version'

SCHEMA = """
-- Small values by key, each JSON:
--   version  SCHEMA_VERSION of the overlay's format
--   info     what the overlay is staged on (overlay.OverlayInfo): repo, branch,
--            bundle and tree ("" for an empty start), mountpoint, when it was made,
--            the bundle's time (the root's mtime), the uid of who mounted it, and
--            (since schema 2) the owner its bundle's entries show
--   pending  a commit whose chunks and trees are stored but whose bundle may not be
--            named yet (commit.py): {id, bundle, branch, label, author}; absent
--            otherwise
--   synced   written by OverlayDB.sync to force one synchronous=FULL commit; its
--            value means nothing
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

-- Every node that differs from the base tree, or lies on the path to one that does
-- (a base node gets a row when it is first changed: nodes.NodeCache.persist). A
-- node no row names is read from the base tree.
CREATE TABLE IF NOT EXISTS nodes (
    ino INTEGER PRIMARY KEY,            -- the inode number the kernel knows it by (root: 1)
    kind TEXT NOT NULL,                 -- file, dir, link (core.model)
    mode INTEGER NOT NULL,              -- permission bits, 0-0o7777
    mtime INTEGER NOT NULL,             -- ns
    ctime INTEGER NOT NULL,             -- ns
    size INTEGER NOT NULL,              -- files: bytes; links: target bytes; dirs: 0
    target TEXT,                        -- links: the target; else NULL
    tree TEXT,                          -- dirs: the base tree its listing starts from
                                        -- (NULL: none, a directory made here)
    origin TEXT,                        -- the base entry it started as (Entry.to_obj as
                                        -- JSON: a file's body in the form of either
                                        -- store format), or NULL for a node made here;
                                        -- commit keeps what still equals it
    staged INTEGER NOT NULL DEFAULT 0,  -- files: 1 when it has written ranges (extents)
    base_limit INTEGER NOT NULL DEFAULT 0,  -- files: the origin's bytes show below this
                                        -- offset (lowered by a shrinking truncate);
                                        -- unwritten bytes above it read as zeros
    nlink INTEGER NOT NULL DEFAULT 1,   -- files and links: their names (dirents rows
                                        -- naming this ino); 0: unlinked but still open,
                                        -- its row goes at the last close, or when the
                                        -- overlay reopens
    -- Since schema 2: what a bundle does not record (docs/ARCHITECTURE.md, "What a
    -- bundle records"); a commit keeps the rows of nodes with an owner or several names.
    uid INTEGER,                        -- owner; NULL: the mount's (OverlayInfo.owner_uid)
    gid INTEGER,                        -- group; NULL: the mount's (OverlayInfo.owner_gid)
    atime INTEGER,                      -- ns; NULL: the mtime
    xattrs TEXT                         -- the node's extended attributes, all of them, as
                                        -- the JSON object of an entry's 7th element
                                        -- (core.model.xattrs_to_obj); NULL: none
);

-- The names of a directory (a node with a row) that differ from its base tree; the
-- names it does not list are its base tree's.
CREATE TABLE IF NOT EXISTS dirents (
    parent INTEGER NOT NULL,            -- the directory's ino
    name BLOB NOT NULL,                 -- the name's bytes, as the kernel gave them
    ino INTEGER,                        -- the node it names; NULL: a whiteout (the base
                                        -- entry of that name is deleted)
    PRIMARY KEY (parent, name)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dirents_by_ino ON dirents (ino) WHERE ino IS NOT NULL;

-- The written byte ranges of staged files: the bytes of [start, end) are in the
-- row itself (`data`, a small file's: content.INLINE_MAX) or else in data/INO at
-- the same offsets. A file's ranges are disjoint and never adjacent
-- (content.StagedData.record merges them). Bytes reach data/INO before the range
-- that shows them is recorded, so a crash leaves at worst bytes nothing shows.
CREATE TABLE IF NOT EXISTS extents (
    ino INTEGER NOT NULL,               -- the file's node
    start INTEGER NOT NULL,             -- first byte written
    end INTEGER NOT NULL,               -- one past the last byte written
    data BLOB,                          -- since schema 3: the bytes of [start, end), or
                                        -- NULL: they are in data/INO
    PRIMARY KEY (ino, start)) WITHOUT ROWID;
"""


# Statements that turn an overlay of the version given into one of the next version; run
# in one transaction with the new version number (db.OverlayDB.migrate).
MIGRATIONS = {
    1: [  # schema 1 had no owners, atime or attributes, and one name per node: NULL
          # means what schema 1 showed (the mount's owner, atime = mtime, none), and its
          # nlink of 0 or 1 already counts the names.
        "ALTER TABLE nodes ADD COLUMN uid INTEGER",
        "ALTER TABLE nodes ADD COLUMN gid INTEGER",
        "ALTER TABLE nodes ADD COLUMN atime INTEGER",
        "ALTER TABLE nodes ADD COLUMN xattrs TEXT",
    ],
    2: [  # schema 2 kept every written byte in data/INO: NULL says so
        "ALTER TABLE extents ADD COLUMN data BLOB",
    ],
}


class MetaRow(NamedTuple):
    key: str
    value: str  # JSON


class NodeRow(NamedTuple):
    ino: int
    kind: str
    mode: int
    mtime: int
    ctime: int
    size: int
    target: str | None
    tree: str | None
    origin: str | None  # JSON
    staged: int
    base_limit: int
    nlink: int
    uid: int | None
    gid: int | None
    atime: int | None
    xattrs: str | None  # JSON


class DirentRow(NamedTuple):
    parent: int
    name: bytes
    ino: int | None


class ExtentRow(NamedTuple):
    ino: int
    start: int
    end: int
    data: bytes | None  # the bytes themselves, or None: in data/INO


def columns(row: type[NamedTuple], table: str = "") -> str:
    """The row's columns for a statement: "ino, kind, ..." (with "t." for `table` t)."""
    prefix = f"{table}." if table else ""
    return ", ".join(prefix + name for name in row._fields)


def params(row: type[NamedTuple]) -> str:
    """Named placeholders for the row's columns, to bind a row's `_asdict()`."""
    return ", ".join(":" + name for name in row._fields)
