"""The mount registry: a small JSON file of the daemon's mounts in its state directory.

It outlives the daemon, so after a crash `datamonfs mounts` can still show what
was mounted (as stale) and `datamonfs unmount` can still clear it. Only the
daemon writes it while it runs; the CLI edits it only while holding the
daemon's lock, that is when no daemon runs.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields

log = logging.getLogger(__name__)

MOUNTED, STALE = "mounted", "stale"


@dataclass
class MountRecord:
    mountpoint: str
    ref: str
    repo: str
    bundle: str
    uid: int  # who asked for it: only they (or root) may unmount it
    worker_pid: int
    daemon_pid: int
    since: float
    mode: str = "ro"  # "rw": a writable mount of `branch`, staging in `overlay`
    state: str = MOUNTED
    reason: str = ""
    branch: str = ""
    overlay: str = ""
    store: dict = field(default_factory=dict)  # the StoreSpec it was mounted from (to_json)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> "MountRecord":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in known})


def load(path: str) -> list[MountRecord]:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        return [MountRecord.from_json(r) for r in doc.get("mounts", [])]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, TypeError, AttributeError) as e:
        log.warning("ignoring unreadable mount registry %s: %s", path, e)
        return []


def save(path: str, records: list[MountRecord]) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".mounts.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"v": 1, "mounts": [r.to_json() for r in records]}, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
