"""Ops that read the store and the cache on a client's behalf: `wait` for a label, and
`locality`, how much of each bundle the daemon's block cache holds.

A pod has no store credentials (the node daemon has), so it waits for its upstream's
label through the daemon. A `wait` request waits at most WAIT_SLICE seconds, and
clients ask again until their own deadline: a client that went away costs the daemon
one slice of polling, never more.

The daemon remembers the bundles it mounted lately (STATE/served.json), so that
`locality` can report them without being asked by name: the bundles a node has served
are the ones its cache may hold.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time

import trio

from ..core import config
from ..core.names import parse_ref, split_ref
from ..core.repository import LABEL, Repository
from ..core.stores import StoreSpec, open_store
from ..errors import DatamonError
from . import auth, protocol
from .paths import DaemonPaths
from .protocol import Refused

log = logging.getLogger(__name__)

WAIT_SLICE = 60.0  # seconds one wait request waits at most
SERVED = 50  # bundles remembered
MAX_REFS = 100  # refs one locality request may name


class StoreOps:
    def __init__(self, paths: DaemonPaths):
        self.served_path = os.path.join(paths.state, "served.json")
        self.waits = trio.CapacityLimiter(64)  # threads polling the store for waiters
        self.walks = trio.CapacityLimiter(2)  # threads walking bundles for locality

    # -- wait ------------------------------------------------------------------

    async def op_wait(self, req: dict, peer: auth.Peer) -> dict:
        """`ref` REPO:LABEL, `seconds` to wait (at most WAIT_SLICE): the label's bundle once
        the label exists; the error code `timeout` when it does not in time."""
        repo_name, label = parse_ref(protocol.field(req, "ref"))
        if label is None:
            raise protocol.ProtocolError("wait takes ref REPO:LABEL")
        timeout = max(0.0, min(float(protocol.field(req, "seconds", (int, float))), WAIT_SLICE))
        spec = StoreSpec.from_json(protocol.field(req, "store", dict))

        def wait():
            repo = Repository(open_store(spec, create=False))
            try:
                return repo.wait_ref(repo_name, LABEL, label, timeout)
            finally:
                repo.store.close()

        head = await trio.to_thread.run_sync(wait, limiter=self.waits, abandon_on_cancel=True)
        if head is None:
            raise Refused(f"label {label!r} of repo {repo_name!r} does not exist yet", "timeout")
        return {"bundle": head.bundle, "repo": repo_name, "label": label}

    # -- locality ----------------------------------------------------------------

    def note_served(self, record: dict) -> None:
        """Remember a bundle the daemon mounted (blocking, small)."""
        if not record.get("bundle"):
            return
        store = record.get("store") or {}
        entry = {"repo": record["repo"], "bundle": record["bundle"], "time": time.time(),
                 "store": store.get("url", "")}
        served = [e for e in self._served() if e["bundle"] != entry["bundle"]]
        served = [entry, *served][:SERVED]
        directory = os.path.dirname(self.served_path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".served.")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"v": 1, "bundles": served}, f)
        os.replace(tmp, self.served_path)

    def _served(self) -> list[dict]:
        try:
            with open(self.served_path, encoding="utf-8") as f:
                entries = json.load(f)["bundles"]
            return [e for e in entries if isinstance(e, dict) and isinstance(e.get("repo"), str)
                    and isinstance(e.get("bundle"), str)]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("ignoring unreadable %s: %s", self.served_path, e)
            return []

    async def op_locality(self, req: dict, peer: auth.Peer) -> dict:
        """Per bundle (the `refs` asked for, then those served lately): its bytes, how many
        of them the cache holds, and the labels naming it now."""
        refs = protocol.field(req, "refs", list, required=False) or []
        if len(refs) > MAX_REFS or not all(isinstance(r, str) for r in refs):
            raise protocol.ProtocolError(f"refs must be a list of at most {MAX_REFS} refs")
        for ref in refs:
            split_ref(ref)
        spec = StoreSpec.from_json(protocol.field(req, "store", dict))
        return await trio.to_thread.run_sync(self._locality, refs, spec, limiter=self.walks)

    def _locality(self, refs: list[str], spec: StoreSpec) -> dict:
        """Blocking. The bundles served lately from other stores than `spec`'s are left
        out."""
        from ..cache import cached_repository, open_cache
        from ..cache.locality import report

        cfg = config.load()
        served = [e for e in self._served() if e.get("store") in ("", None, spec.url)]
        if not refs and not served:  # nothing to look up: the store need not even exist
            return {"bundles": [], "cache": open_cache(cfg)[0].stats()}
        repo, reader = cached_repository(cfg, spec)
        try:
            bundles = {}
            for ref in refs:
                b = repo.resolve(ref)
                bundles[b.id] = b
            for e in served:
                if e["bundle"] not in bundles:
                    try:
                        bundles[e["bundle"]] = repo.get_bundle(e["repo"], e["bundle"])
                    except DatamonError as err:  # gone from the store, or the store is down
                        log.warning("locality: skipping bundle %s of %s: %s", e["bundle"][:12],
                                    e["repo"], err)
            blocks = open_cache(cfg)[0]
            rows = report(repo, blocks, list(bundles.values()))
            return {"bundles": rows, "cache": blocks.stats()}
        finally:
            reader.close()
            repo.store.close()

