"""Where the daemon keeps the overlays of writable mounts, and finding them again.

One overlay per mountpoint, in STATE/overlays/<hash of the mountpoint>/ (see
fs/overlay/). The overlay records its own mountpoint, repo, branch and bundle,
so a daemon that starts after a crash finds every overlay by listing this
directory, even one its mount registry no longer names.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil

from ..fs.overlay import DB_NAME, OverlayInfo, read_info
from ..fs.vfs import FsError
from .paths import DaemonPaths

log = logging.getLogger(__name__)


def root(paths: DaemonPaths) -> str:
    return os.path.join(paths.state, "overlays")


def overlay_dir(paths: DaemonPaths, mountpoint: str) -> str:
    return os.path.join(root(paths), hashlib.sha256(mountpoint.encode()).hexdigest()[:16])


def exists(directory: str) -> bool:
    return os.path.exists(os.path.join(directory, DB_NAME))


def scan(paths: DaemonPaths) -> list[tuple[str, OverlayInfo]]:
    """Blocking: every overlay in the state directory, with what it is staged on."""
    found = []
    try:
        names = sorted(os.listdir(root(paths)))
    except FileNotFoundError:
        return []
    for name in names:
        directory = os.path.join(root(paths), name)
        if not exists(directory):
            continue
        try:
            found.append((directory, read_info(directory)))
        except FsError as e:
            log.warning("ignoring unreadable overlay %s: %s", directory, e)
    return found


STORE_FILE = "store.json"  # the StoreSpec its mount was made from (beside the overlay's db)


def save_store(directory: str, store: dict) -> None:
    """Blocking: note which store an overlay is staged for, so a daemon that adopts it
    after a crash commits it to that store."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    tmp = os.path.join(directory, STORE_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(store, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(directory, STORE_FILE))


def load_store(directory: str) -> dict:
    """The store an overlay is staged for ({} when it does not say)."""
    try:
        with open(os.path.join(directory, STORE_FILE), encoding="utf-8") as f:
            value = json.load(f)
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def discard(directory: str) -> None:
    """Blocking: delete an overlay and everything staged in it."""
    shutil.rmtree(directory, ignore_errors=True)
