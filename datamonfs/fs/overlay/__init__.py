"""The writable overlay: what a writable mount stages, in SQLite and sparse data files.

    schema.py     the database's tables, every column explained, and its row types
    db.py         the connection: changes (Tx), group commits, syncs, meta values
    nodes.py      Node, rows <-> nodes, the node cache; with db.py and extents.py,
                  the only SQL
    namespace.py  lookups, listings and changes to names
    attributes.py modes, sizes, times, owners, extended attributes of nodes
    content.py    file content: a FUSE write staged, reads put together
    staged.py     staged bytes: data/INO files, and small files' bytes in extent rows
    extents.py    the written ranges of staged files
    overlay.py    Overlay (made of the three above), opening, the commit's rebase
    changes.py    the commit description for core.commit, and `status`
    commit.py     commit in crash-safe steps, finishing one a crash interrupted
"""

from .changes import describe, status
from .commit import commit_overlay, finish_pending, open_overlay, staged_bytes
from .staged import OpenReader, RangeReader
from .nodes import Node
from .overlay import DATA_DIR, DB_NAME, Overlay, OverlayInfo, read_info
from .schema import SCHEMA_VERSION

__all__ = ["DATA_DIR", "DB_NAME", "SCHEMA_VERSION", "Node", "OpenReader", "Overlay",
           "OverlayInfo", "RangeReader", "commit_overlay", "describe", "finish_pending", "staged_bytes",
           "open_overlay", "read_info", "status"]
