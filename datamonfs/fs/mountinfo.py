"""What the kernel says is mounted (/proc/self/mountinfo), without touching the mounts.

A stat of a dead FUSE mount fails (ENOTCONN) and one of a hung mount blocks, so
code that must cope with both reads the mount table instead.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class MountEntry:
    mountpoint: str
    device: str  # "major:minor"
    fstype: str
    source: str


def _unescape(field: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def mounts(path: str = "/proc/self/mountinfo") -> list[MountEntry]:
    out = []
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(fields) < 5 or len(tail) < 2:
                continue
            out.append(MountEntry(_unescape(fields[4]), fields[2], tail[0], _unescape(tail[1])))
    return out


def find(mountpoint: str) -> MountEntry | None:
    """The topmost mount at this path, if any."""
    mountpoint = os.path.normpath(mountpoint)
    found = None
    for m in mounts():
        if m.mountpoint == mountpoint:
            found = m
    return found


def set_read_ahead(mountpoint: str, kb: int) -> bool:
    """Raise a mount's backing-device read-ahead so the kernel sends large reads.

    Root only (a sysfs knob); False when it could not be set. On a FUSE mount, only after
    the kernel has the answer to its INIT request (see after_init)."""
    return _set_bdi(mountpoint, "read_ahead_kb", kb)


async def after_init(mountpoint: str) -> None:
    """Return once the kernel has the FUSE daemon's answer to its INIT request (the caller
    serves the mount meanwhile): a stat through the mount waits for it. That answer caps
    the mount's read-ahead at what the kernel proposed when mounting (128 KiB), undoing a
    `read_ahead_kb` written earlier."""
    import trio  # only FUSE servers need it

    try:
        await trio.to_thread.run_sync(os.stat, mountpoint, abandon_on_cancel=True)
    except OSError:
        pass  # not answered: nothing to tune either


def set_dirty_limit(mountpoint: str, limit: int) -> bool:
    """Let the kernel hold up to `limit` bytes of a mount's unwritten pages. A FUSE mount
    gets 1% of the dirty threshold (the kernel does not trust a user's daemon with more):
    tens of MiB, so a burst of small writes soon waits for the daemon one page at a time.

    Root only (a sysfs knob); False when it could not be set.
    """
    return _set_bdi(mountpoint, "max_bytes", limit)


def _set_bdi(mountpoint: str, knob: str, value: int) -> bool:
    m = find(mountpoint)
    if m is None:
        return False
    try:
        with open(f"/sys/class/bdi/{m.device}/{knob}", "w") as f:
            f.write(str(value))
        return True
    except OSError:
        return False
