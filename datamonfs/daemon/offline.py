"""What the CLI can still do when no daemon answers: read and clear the registry.

After a daemon dies (even by SIGKILL) its mounts are dead: `mounts` shows them
stale, and `unmount` clears them with fusermount3 (lazily as a last resort).
The registry is edited only while holding the daemon's lock, so no daemon can
start and write it meanwhile.
"""

from __future__ import annotations

import os

from ..errors import NotFound
from . import mountpoints, overlays, registry
from .lock import DaemonLock
from .paths import DaemonPaths
from .registry import STALE, MountRecord


class DaemonBusy(Exception):
    """The lock is held, yet the socket does not answer: a daemon starting or stuck."""


def _kept(r: MountRecord) -> bool:
    """A writable mount's overlay outlives its mount until committed or discarded."""
    return r.mode == "rw" and bool(r.overlay) and overlays.exists(r.overlay)


def stale_mounts(paths: DaemonPaths) -> list[MountRecord]:
    """The dead mounts a daemon left (those still in the mount table, and writable
    ones whose staged changes are kept)."""
    records = [r for r in registry.load(paths.registry)
               if mountpoints.is_mounted(r.mountpoint) or _kept(r)]
    for r in records:
        if r.state != STALE:
            r.state, r.reason = STALE, "its daemon is not running"
    return records


def record(paths: DaemonPaths, mountpoint: str) -> MountRecord | None:
    return next((r for r in registry.load(paths.registry) if r.mountpoint == mountpoint), None)


def clear(paths: DaemonPaths, mountpoint: str) -> MountRecord:
    """Unmount a dead mount the registry knows and forget it (a writable mount's staged
    changes too: the CLI comes here for those only with --discard)."""
    if not os.path.isdir(os.path.dirname(paths.lock)):  # no daemon ever ran on this socket
        raise NotFound(f"no datamonfs mount at {mountpoint} (and no daemon on "
                       f"{paths.socket}); see 'datamonfs mounts'")
    lock = DaemonLock(paths.lock)
    if not lock.try_acquire(write_pid=False):
        raise DaemonBusy()
    try:
        records = registry.load(paths.registry)
        found = [r for r in records if r.mountpoint == mountpoint]
        if not found:
            raise NotFound(f"no datamonfs mount at {mountpoint} (and no daemon running on "
                           f"{paths.socket}); see 'datamonfs mounts'")
        ok, err = mountpoints.clear(mountpoint)
        if not ok:
            raise NotFound(f"cannot unmount {mountpoint}: {err}")
        if _kept(found[0]):
            overlays.discard(found[0].overlay)
        registry.save(paths.registry, [r for r in records if r.mountpoint != mountpoint])
        return found[0]
    finally:
        lock.release()
