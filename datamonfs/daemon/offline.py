"""What the CLI can still do when no daemon answers: read and clear the registry.

After a daemon dies (even by SIGKILL) its mounts are dead: `mounts` shows them
stale, and `unmount` clears them with fusermount3 (lazily as a last resort).
The registry is edited only while holding the daemon's lock, so no daemon can
start and write it meanwhile.
"""

from __future__ import annotations

from ..errors import NotFound
from . import mountpoints, registry
from .lock import DaemonLock
from .paths import DaemonPaths
from .registry import STALE, MountRecord


class DaemonBusy(Exception):
    """The lock is held, yet the socket does not answer: a daemon starting or stuck."""


def stale_mounts(paths: DaemonPaths) -> list[MountRecord]:
    """The dead mounts a daemon left (those still in the mount table)."""
    records = [r for r in registry.load(paths.registry) if mountpoints.is_mounted(r.mountpoint)]
    for r in records:
        if r.state != STALE:
            r.state, r.reason = STALE, "its daemon is not running"
    return records


def clear(paths: DaemonPaths, mountpoint: str) -> MountRecord:
    """Unmount a dead mount the registry knows and forget it."""
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
        registry.save(paths.registry, [r for r in records if r.mountpoint != mountpoint])
        return found[0]
    finally:
        lock.release()
