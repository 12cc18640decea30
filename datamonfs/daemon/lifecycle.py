"""The mount table and each mount's life: mount, watch, unmount, and the ops that
ask a writable mount's worker (commit, status), resuming the mount when it is stale.

Handlers run on the event loop and hand blocking work (mountpoint checks,
fusermount3, overlay directories) to threads. A worker that dies turns its mount
stale; the other mounts carry on. A writable mount's overlay outlives its worker:
its record stays, stale, until what it staged is committed or discarded.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import trio

from ..core.names import DEFAULT_BRANCH, check_name, parse_ref
from ..core.model import Provenance
from ..core.stores import StoreSpec
from ..errors import IntegrityError, NotFound
from . import auth, mountpoints, overlays, protocol, registry
from .limits import COMMIT_TIMEOUT, STATUS_LIMIT
from .paths import DaemonPaths
from .protocol import Refused
from .registry import STALE, MountRecord
from .spares import SpareWorkers
from .worker_process import WorkerProcess, describe_exit

log = logging.getLogger(__name__)

KEPT = "staged changes kept"  # the reason shown for a writable mount that is not served


@dataclass
class Mount:
    record: MountRecord
    worker: WorkerProcess | None  # None: stale, nothing serves it
    unmounting: bool = False


class MountTable:
    def __init__(self, paths: DaemonPaths, spares: SpareWorkers, nursery: trio.Nursery,
                 mounts: dict[str, Mount]):
        self.paths = paths
        self.spares = spares
        self.nursery = nursery  # the supervisor's: it owns every watch
        self.mounts = mounts
        self.pending: set[str] = set()  # mountpoints being mounted
        self.closing = False
        self.blocking = trio.CapacityLimiter(4)

    def save(self) -> None:
        registry.save(self.paths.registry, [m.record for m in self.mounts.values()])

    async def _thread(self, fn, *args):
        return await trio.to_thread.run_sync(fn, *args, limiter=self.blocking)

    async def op_list(self, req: dict, peer: auth.Peer) -> dict:
        return {"mounts": [m.record.to_json() for m in self.mounts.values()]}

    # -- mount -----------------------------------------------------------------

    async def op_mount(self, req: dict, peer: auth.Peer) -> dict:
        ref = protocol.field(req, "ref")
        mp = await self._mountpoint(req)
        rw = _writable_fields(req, ref)
        owner = await self._thread(_owner_fields, req, peer)
        store = StoreSpec.from_json(protocol.field(req, "store", dict)).to_json()
        if self.closing:
            raise Refused("the daemon is shutting down", "shutting_down")
        m = self.mounts.get(mp)
        if m is not None and rw and m.record.mode == "rw" and m.record.state == STALE:
            self._check_owner(m, peer)  # resume its overlay below
            _check_store(m, store)
            if (m.record.repo, m.record.branch) != (rw["repo"], rw["branch"]):
                raise Refused(f"{mp} has staged changes for {m.record.repo}:{m.record.branch}; "
                              f"mount that, or discard them with 'datamonfs unmount --discard "
                              f"{mp}'", "already_mounted")
        elif m is not None:
            if m.record.state == STALE:
                raise Refused(f"{mp} has a stale datamonfs mount ({m.record.reason}); "
                              f"run 'datamonfs unmount {mp}' first", "already_mounted")
            if _same_mount(m.record, ref, rw):
                # Asking again for what is there (a documented way to resume after a
                # crash, which something may have done already) succeeds.
                self._check_owner(m, peer)
                _check_store(m, store)
                return {"mount": m.record.to_json(), "already": True}
            raise Refused(f"{mp} is already mounted ({m.record.ref}, bundle "
                          f"{m.record.bundle[:12]})", "already_mounted")
        return {"mount": (await self._start_once(mp, ref, peer, rw, store, owner)).to_json()}

    async def _start_once(self, mp: str, ref: str, peer: auth.Peer, rw: dict | None,
                          store: dict, owner: dict | None = None) -> MountRecord:
        if mp in self.pending:
            raise Refused(f"{mp} is being mounted already", "already_mounted")
        self.pending.add(mp)
        try:
            return await self._start(mp, ref, peer, rw, store, owner)
        finally:
            self.pending.discard(mp)

    async def _start(self, mp: str, ref: str, peer: auth.Peer, rw: dict | None,
                     store: dict, owner: dict | None) -> MountRecord:
        """Mount at mp (clearing a dead writable mount there first) and record it. The
        worker opens the store the request names: never the daemon's own."""
        extra = dict(owner or {})
        if rw:
            overlay = overlays.overlay_dir(self.paths, mp)
            existed = await trio.to_thread.run_sync(overlays.exists, overlay)
            await self._thread(mountpoints.clear, mp)
            await self._thread(overlays.save_store, overlay, store)
            extra.update(rw, overlay=overlay)
        await self._thread(mountpoints.check, mp, peer.uid)
        worker = await self.spares.take()
        try:
            ready = await worker.mount({"ref": ref, "mountpoint": mp, "uid": peer.uid,
                                        "gid": peer.gid, "store": store, **extra})
        except BaseException:
            with trio.CancelScope(shield=True):
                await worker.kill()
                await trio.to_thread.run_sync(mountpoints.clear, mp)
                if rw and not existed:  # nothing was staged in it
                    await trio.to_thread.run_sync(overlays.discard, extra["overlay"])
            raise
        record = MountRecord(mountpoint=mp, ref=ref, repo=ready["repo"], bundle=ready["bundle"],
                             uid=peer.uid, worker_pid=worker.pid, daemon_pid=os.getpid(),
                             since=time.time(), mode="rw" if rw else "ro",
                             branch=extra.get("branch", ""), overlay=extra.get("overlay", ""),
                             store=store)
        self.mounts[mp] = Mount(record, worker)
        self.save()
        self.nursery.start_soon(self._watch, mp, worker)
        log.info("mounted %s (bundle %s) at %s for uid %d, worker %d%s", ref,
                 record.bundle or "none", mp, peer.uid, worker.pid, ", writable" if rw else "")
        if rw and ready.get("recovered"):
            log.info("finished the commit of %s a crash interrupted: bundle %s", mp,
                     ready["recovered"])
        return record

    async def _watch(self, mp: str, worker: WorkerProcess) -> None:
        """When a mount's worker exits on its own: forget the mount, or mark it stale."""
        await worker.exited.wait()
        m = self.mounts.get(mp)
        if m is None or m.worker is not worker or m.unmounting:
            return
        m.worker = None
        gone = not await trio.to_thread.run_sync(mountpoints.is_mounted, mp)
        if worker.returncode == 0 and gone and m.record.mode == "rw":
            log.info("%s was unmounted from outside the daemon; %s", mp, KEPT)
            m.record.state, m.record.reason = STALE, f"unmounted outside datamonfs; {KEPT}"
        elif worker.returncode == 0 and gone:
            log.info("%s was unmounted from outside the daemon", mp)
            del self.mounts[mp]
        else:
            m.record.state, m.record.reason = STALE, describe_exit(worker.returncode)
            log.error("mount %s is stale: %s; 'datamonfs unmount %s' clears it",
                      mp, m.record.reason, mp)
        self.save()

    # -- unmount ---------------------------------------------------------------

    async def op_unmount(self, req: dict, peer: auth.Peer) -> dict:
        mp = await self._mountpoint(req)
        m = self.mounts.get(mp)
        if m is None:
            raise NotFound(f"no datamonfs mount at {mp}; see 'datamonfs mounts'")
        self._check_owner(m, peer)
        if m.unmounting:
            raise Refused(f"{mp} is being unmounted already", "busy")
        rw = m.record.mode == "rw"
        discard = rw and protocol.field(req, "discard", bool, required=False)
        force = bool(protocol.field(req, "force", bool, required=False))
        keep = rw and bool(protocol.field(req, "keep", bool, required=False))
        if discard and keep:
            raise protocol.ProtocolError("unmount takes 'discard' or 'keep', not both")
        if m.worker is not None and not force:
            # Before committing: a busy mount would be committed, then not unmounted.
            users = await self._thread(mountpoints.users, mp)
            if users:
                raise Refused(f"{mp} is busy: used by {users}; close its files and leave the "
                              "directory, or unmount --lazy", "busy")
        committed = None
        if rw and not (discard or keep):
            _check_store(m, protocol.field(req, "store", dict, required=False))
            committed = await self._settle(m, peer, req)
        await self.unmount(m, force=force, drop_overlay=rw and not keep,
                           reason="unmounted with its changes kept")
        return {"mountpoint": mp, "commit": committed}

    async def _settle(self, m: Mount, peer: auth.Peer, req: dict) -> dict | None:
        """Never lose what a writable mount staged: commit it (the default), or refuse
        to unmount while anything is staged; the commit's result, if any."""
        mp = m.record.mountpoint
        if protocol.field(req, "commit", bool, required=False) is False:
            status = await self.ask(m, peer, "status", limit=0)
            if status["total"]:
                raise Refused(f"{mp} has {status['total']} staged change(s); commit them "
                              f"('datamonfs commit {mp}') or discard them ('datamonfs unmount "
                              f"--discard {mp}')", "busy")
            return None
        author = protocol.field(req, "author", dict, required=False)
        if not author:
            raise Refused("committing on unmount needs an author; run 'datamonfs config "
                          "create', or unmount with --discard", "config")
        return await self.ask(m, peer, "commit", timeout=COMMIT_TIMEOUT,
                              message=f"committed by unmount of {mp}", author=author,
                              progress=bool(req.get("progress")))

    async def unmount(self, m: Mount, force: bool, drop_overlay: bool = False,
                      reason: str = "the daemon stopped") -> None:
        """Unmount; a writable mount's overlay is deleted with `drop_overlay` (committed or
        discarded), else kept with its record, stale (`reason`), for a later mount to
        resume."""
        mp = m.record.mountpoint
        m.unmounting = True
        try:
            await self._detach(m, force)
            if m.worker is not None:
                with trio.move_on_after(10):
                    await m.worker.exited.wait()
                if not m.worker.exited.is_set():
                    await m.worker.stop()
            if m.record.mode == "rw" and not drop_overlay:
                m.worker = None
                m.record.state, m.record.reason = STALE, f"{reason}; {KEPT}"
            else:
                if m.record.mode == "rw":
                    await trio.to_thread.run_sync(overlays.discard, m.record.overlay)
                self.mounts.pop(mp, None)
            self.save()
            log.info("unmounted %s", mp)
        finally:
            m.unmounting = False

    async def _detach(self, m: Mount, force: bool) -> None:
        """fusermount3 -u; a busy live mount is refused unless `force` (then, as for a
        dead mount, detached lazily)."""
        mp = m.record.mountpoint
        ok, err = await self._thread(mountpoints.fusermount, mp)
        mounted = not ok and await self._thread(mountpoints.is_mounted, mp)
        if mounted and m.worker is not None and not force:
            raise Refused(f"{mp} is busy ({err}); close its files and leave the directory, "
                          "then retry", "busy")
        if mounted:
            ok, err = await self._thread(mountpoints.clear, mp)
            if not ok:
                raise Refused(f"cannot unmount {mp}: {err}", "busy")

    async def unmount_all(self) -> None:
        """On shutdown: every mount, busy or not (writable ones keep their overlays)."""
        async def quietly(m: Mount) -> None:
            try:
                await self.unmount(m, force=True)
            except Exception:
                log.exception("could not unmount %s", m.record.mountpoint)

        async with trio.open_nursery() as n:
            for m in list(self.mounts.values()):
                n.start_soon(quietly, m)

    # -- what writable mounts staged -------------------------------------------------

    async def op_staged(self, req: dict, peer: auth.Peer) -> dict:
        """`status` with a mountpoint: the changes a writable mount has staged."""
        m = await self._writable(req, peer)
        limit = protocol.field(req, "limit", int, required=False)
        return await self.ask(m, peer, "status", limit=STATUS_LIMIT if limit is None else limit)

    async def op_commit(self, req: dict, peer: auth.Peer) -> dict:
        m = await self._writable(req, peer)
        message = protocol.field(req, "message")
        label = protocol.field(req, "label", str, required=False)
        if label is not None:
            check_name(label, "label name")
        author = protocol.field(req, "author", dict)
        if not all(isinstance(author.get(k), str) for k in ("name", "email")):
            raise protocol.ProtocolError("field 'author' needs a name and an email")
        _check_store(m, protocol.field(req, "store", dict, required=False))
        try:  # what the bundle was made from: checked by the rules of a bundle record
            made_from = Provenance.from_obj(req, "commit request")
        except IntegrityError as e:
            raise protocol.ProtocolError(str(e)) from None
        return await self.ask(m, peer, "commit", timeout=COMMIT_TIMEOUT, message=message,
                              label=label, author={"name": author["name"],
                                                   "email": author["email"]},
                              progress=bool(protocol.field(req, "progress", bool,
                                                           required=False)),
                              **made_from.to_obj())

    async def ask(self, m: Mount, peer: auth.Peer, op: str, timeout: float = 60,
                  **fields) -> dict:
        """A writable mount's worker answers `op`; a stale one is mounted again first
        (resuming its overlay), so what it staged can always be committed."""
        mp = m.record.mountpoint
        if m.unmounting or mp in self.pending:
            raise Refused(f"{mp} is being mounted or unmounted; retry", "busy")
        if m.worker is None:
            rw = {"rw": True, "new": False, "create": False, "repo": m.record.repo,
                  "branch": m.record.branch}
            await self._start_once(mp, m.record.ref, peer, rw, await self._store_of(m))
            m = self.mounts[mp]
        reply = await m.worker.ask(op, timeout=timeout, on_progress=protocol.progress_sink(),
                                   **fields)
        if reply is None:
            raise Refused(f"the worker of {mp} did not answer {op!r}; see the daemon log",
                          "unavailable")
        if not reply.get("ok"):
            err = reply.get("error") or {}  # passed on with its code (the CLI's exit status)
            raise Refused(str(err.get("message", f"{op} failed")), str(err.get("code", "internal")))
        if op == "commit" and reply.get("bundle"):
            m.record.bundle = reply["bundle"]
            self.save()
        return {k: v for k, v in reply.items() if k not in ("id", "ok")}

    async def _store_of(self, m: Mount) -> dict:
        """The store a stale mount was made from; for a record of an older daemon that
        did not keep it, the daemon's own config's."""
        if m.record.store:
            return StoreSpec.from_json(m.record.store).to_json()

        def configured() -> dict:
            from ..core import config

            return config.load().store_spec().to_json()

        return await self._thread(configured)

    # -- request fields ----------------------------------------------------------

    async def _mountpoint(self, req: dict) -> str:
        mp = protocol.field(req, "mountpoint")
        if not os.path.isabs(mp) or "\0" in mp:
            raise protocol.ProtocolError("mountpoint must be an absolute path")
        return await self._thread(mountpoints.normalize, mp)

    async def _writable(self, req: dict, peer: auth.Peer) -> Mount:
        mp = await self._mountpoint(req)
        m = self.mounts.get(mp)
        if m is None or m.record.mode != "rw":
            raise NotFound(f"no writable datamonfs mount at {mp}; see 'datamonfs mounts'")
        self._check_owner(m, peer)
        return m

    @staticmethod
    def _check_owner(m: Mount, peer: auth.Peer) -> None:
        if not auth.is_privileged(peer) and not peer.pod and peer.uid != m.record.uid:
            raise Refused(f"{m.record.mountpoint} was mounted by another user", "forbidden")


def _owner_fields(req: dict, peer: auth.Peer) -> dict | None:
    """`uid`/`gid` of a mount request: who the bundle's entries belong to (default: the
    peer). Root may name anyone; another user only themself and one of their groups."""
    uid = protocol.field(req, "uid", int, required=False)
    gid = protocol.field(req, "gid", int, required=False)
    if uid is None and gid is None:
        return None
    uid, gid = peer.uid if uid is None else uid, peer.gid if gid is None else gid
    if not (0 <= uid < 2**32 - 1 and 0 <= gid < 2**32 - 1):
        raise protocol.ProtocolError("fields 'uid' and 'gid' must be ids from 0 to 4294967294")
    if peer.uid != 0 and (uid != peer.uid or gid not in auth.groups_of(peer)):
        raise Refused(f"only root may show files as owned by another user or group (asked for "
                      f"{uid}:{gid}, you are uid {peer.uid})", "forbidden")
    return {"owner_uid": uid, "owner_gid": gid}


def _check_store(m: Mount, store: dict | None) -> None:
    """A request about a mount that names another store than the mount's is refused,
    naming both: a commit goes where the mount's bundle came from, never elsewhere."""
    if store is None or not m.record.store:
        return
    asked, mounted = StoreSpec.from_json(store).url, m.record.store.get("url")
    if asked != mounted:
        raise Refused(f"{m.record.mountpoint} is a mount of store {mounted}, not of {asked} "
                      "(your DATAMONFS_STORE or config); use that store, or unmount it first",
                      "config")


def _same_mount(rec: MountRecord, ref: str, rw: dict | None) -> bool:
    if rw is None:
        return rec.mode == "ro" and rec.ref == ref
    return (rec.mode == "rw" and not rw["new"]
            and (rec.repo, rec.branch) == (rw["repo"], rw["branch"]))


def _writable_fields(req: dict, ref: str) -> dict | None:
    """For `rw`: the repo and branch a writable mount follows, and its overlay fields."""
    if not protocol.field(req, "rw", bool, required=False):
        return None
    new = bool(protocol.field(req, "new", bool, required=False))
    create = bool(protocol.field(req, "create", bool, required=False))
    repo, name = parse_ref(ref)
    branch = protocol.field(req, "branch", str, required=False)
    if new and (name or not branch):
        raise protocol.ProtocolError("a new writable mount takes ref REPO and a branch name")
    branch = branch if new else (name or DEFAULT_BRANCH)
    check_name(branch, "branch name")
    return {"rw": True, "new": new, "create": create, "repo": repo, "branch": branch}
