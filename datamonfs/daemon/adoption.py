"""What an earlier daemon on this socket left: its mounts, dead now, and the overlays
of its writable mounts, which a new daemon serves again when asked.

A read-only mount still in the mount table becomes a stale record, for `unmount`
to clear; one no longer there (after a reboot, say) is forgotten. A writable
mount's overlay is kept until committed or discarded, mounted or not, and so is
an overlay the registry no longer names (it was lost in a crash): its own
database says what it is staged on.
"""

from __future__ import annotations

import logging
import os

from . import mountpoints, overlays, registry
from .lifecycle import KEPT, Mount
from .paths import DaemonPaths
from .registry import MOUNTED, STALE, MountRecord

log = logging.getLogger(__name__)


def adopt(paths: DaemonPaths) -> dict[str, Mount]:
    """Blocking: the mounts to start with, every one stale, by mountpoint."""
    mounts = _from_registry(paths)
    _add_unnamed_overlays(paths, mounts)
    if mounts:
        log.warning("%d stale mount(s) from an earlier daemon; 'datamonfs unmount' clears them",
                    len(mounts))
    return mounts


def _from_registry(paths: DaemonPaths) -> dict[str, Mount]:
    mounts = {}
    for rec in registry.load(paths.registry):
        rw = rec.mode == "rw" and bool(rec.overlay) and overlays.exists(rec.overlay)
        if not rw and not mountpoints.is_mounted(rec.mountpoint):
            continue
        if rec.state == MOUNTED:
            rec.state, rec.reason = STALE, "its daemon died" + (f"; {KEPT}" if rw else "")
        mounts[rec.mountpoint] = Mount(rec, None)
    return mounts


def _add_unnamed_overlays(paths: DaemonPaths, mounts: dict[str, Mount]) -> None:
    named = {m.record.overlay for m in mounts.values()}
    for directory, info in overlays.scan(paths):
        if directory in named or info.mountpoint in mounts:
            continue
        mounts[info.mountpoint] = Mount(MountRecord(
            mountpoint=info.mountpoint, ref=f"{info.repo}:{info.branch}", repo=info.repo,
            bundle=info.bundle, uid=info.uid, worker_pid=0, daemon_pid=os.getpid(),
            since=info.created, mode="rw", state=STALE, reason=f"recovered; {KEPT}",
            branch=info.branch, overlay=directory, store=overlays.load_store(directory)), None)
