"""Timeouts and limits that the CLI, the supervisor and the mount workers agree on.

Nothing is imported here but os, so the CLI reads them without loading the daemon.
"""

from __future__ import annotations

import os

# A commit uploads whatever changed: minutes for a large change, so the CLI and the
# supervisor wait this long for it (the worker's reply), not the usual few seconds.
COMMIT_TIMEOUT = float(os.environ.get("DATAMONFS_COMMIT_TIMEOUT", "86400"))
# From a worker's mount request to its "ready": opening the store, resolving the ref.
MOUNT_TIMEOUT = float(os.environ.get("DATAMONFS_MOUNT_TIMEOUT", "120"))
# Changes listed in one status reply (the counts cover them all).
STATUS_LIMIT = 1000
