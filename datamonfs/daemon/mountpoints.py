"""Checking a mountpoint before mounting, and unmounting with fusermount3."""

from __future__ import annotations

import os
import stat
import subprocess

from ..errors import NotFound
from ..fs import mountinfo
from .protocol import Refused

FUSERMOUNT = "fusermount3"


def normalize(path: str) -> str:
    """An absolute path with its parent resolved, never stat-ing the path itself
    (a dead or hung mount there would fail or block)."""
    path = os.path.abspath(path)
    parent, name = os.path.split(path)
    try:
        return os.path.join(os.path.realpath(parent), name) if name else path
    except OSError as e:  # realpath raises what it cannot read, e.g. /proc/1/root
        raise Refused(f"cannot use mountpoint {path}: {e.strerror or e} resolving "
                              f"{e.filename or parent}", "bad_mountpoint") from None


def is_mounted(path: str) -> bool:
    return mountinfo.find(path) is not None


def check(path: str, uid: int) -> None:
    """Blocking. Raises unless `path` is an empty directory with nothing mounted on it
    that the requesting user `uid` owns (root may mount anywhere)."""
    if is_mounted(path):
        raise Refused(f"{path} is already a mount point; unmount it first "
                              "(see 'datamonfs mounts')", "already_mounted")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise NotFound(f"mountpoint {path} does not exist; create the directory first") from None
    except OSError as e:
        raise Refused(f"cannot use mountpoint {path}: {e.strerror}", "bad_mountpoint") from None
    if not stat.S_ISDIR(st.st_mode):
        raise Refused(f"mountpoint {path} is not a directory", "not_a_directory")
    if uid != 0 and st.st_uid != uid:
        raise Refused(f"mountpoint {path} is not yours; mount on a directory you own",
                              "forbidden")
    with os.scandir(path) as it:
        if next(it, None) is not None:
            raise Refused(f"mountpoint {path} is not empty; use an empty directory",
                                  "not_empty")


def fusermount(path: str, lazy: bool = False) -> tuple[bool, str]:
    """Blocking `fusermount3 -u [-z] PATH`: (success, its error message)."""
    args = [FUSERMOUNT, "-u"] + (["-z"] if lazy else []) + [path]
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)
    return proc.returncode == 0, " ".join(proc.stderr.split())


def clear(path: str) -> tuple[bool, str]:
    """Blocking: unmount whatever is mounted at `path`, lazily as a last resort."""
    if not is_mounted(path):
        return True, ""
    ok, err = fusermount(path)
    if ok or not is_mounted(path):
        return True, ""
    ok, err2 = fusermount(path, lazy=True)
    return ok or not is_mounted(path), err2 or err


def users(path: str, limit: int = 3) -> str:
    """Blocking: the processes using `path` (working directory, root, open files or mapped
    files below it), as "pid 12 (bash), pid 34 (python3)"; "" when none is found. Read
    from /proc like fuser(1), never touching the mount itself."""
    inside = path.rstrip("/") + "/"
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        if _uses(f"/proc/{pid}", path, inside):
            try:
                with open(f"/proc/{pid}/comm") as f:
                    name = f.read().strip()
            except OSError:
                name = "?"
            found.append(f"pid {pid} ({name})")
    more = f" and {len(found) - limit} more" if len(found) > limit else ""
    return ", ".join(found[:limit]) + more


def _uses(proc: str, path: str, inside: str) -> bool:
    def under(link: str) -> bool:
        try:
            target = os.readlink(link)
        except OSError:
            return False
        return target == path or target.startswith(inside)

    if under(f"{proc}/cwd") or under(f"{proc}/root"):
        return True
    try:
        fds = os.listdir(f"{proc}/fd")
    except OSError:
        return False
    return any(under(f"{proc}/fd/{fd}") for fd in fds)
