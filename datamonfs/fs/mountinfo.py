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

    Root only (a sysfs knob); False when it could not be set.
    """
    m = find(mountpoint)
    if m is None:
        return False
    try:
        with open(f"/sys/class/bdi/{m.device}/read_ahead_kb", "w") as f:
            f.write(str(kb))
        return True
    except OSError:
        return False
