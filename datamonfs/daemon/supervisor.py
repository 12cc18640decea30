"""The supervisor: the control socket, the mount table, and the workers behind it.

Each request is answered by a handler in `Supervisor.ops` (a later op such as
commit is one more entry there). Handlers run on the event loop and hand
blocking work (mountpoint checks, fusermount3, the cache) to threads.
A worker that dies turns its mount stale; the other mounts carry on.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

import trio

from .. import __version__
from ..core.names import DEFAULT_BRANCH, check_name, parse_ref
from ..errors import DatamonError, NotFound
from . import auth, mountpoints, overlays, protocol, registry
from .limits import COMMIT_TIMEOUT, STATUS_LIMIT
from .paths import DaemonPaths
from .protocol import Refused
from .registry import MOUNTED, STALE, MountRecord
from .worker_process import WorkerProcess, describe_exit

log = logging.getLogger(__name__)

Handler = Callable[[dict, auth.Peer], Awaitable[dict]]

KEPT = "staged changes kept"  # the reason shown for a writable mount that is not served


@dataclass
class Mount:
    record: MountRecord
    worker: WorkerProcess | None
    unmounting: bool = False


class Supervisor:
    def __init__(self, paths: DaemonPaths, group: int | None = None, log_fd: int | None = None):
        self.paths = paths
        self.group = group
        self.log_fd = log_fd
        self.started = time.time()
        self.mounts: dict[str, Mount] = {}
        self.pending: set[str] = set()
        self.closing = False
        self.nursery: trio.Nursery | None = None
        self.blocking = trio.CapacityLimiter(4)
        self._spare: WorkerProcess | None = None
        self._refilling = False
        self.ops: dict[str, Handler] = {
            "mount": self.op_mount,
            "unmount": self.op_unmount,
            "list": self.op_list,
            "status": self.op_status,
            "commit": self.op_commit,
            "cache_stats": self.op_cache_stats,
            "shutdown": self.op_shutdown,
        }

    # -- lifecycle -----------------------------------------------------------

    async def serve(self, listener: trio.SocketListener, on_ready: Callable[[], None]) -> None:
        self._adopt_registry()
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            nursery.start_soon(self._signals)
            nursery.start_soon(self._refill)
            on_ready()
            log.info("daemon %d serving %s", os.getpid(), self.paths.socket)
            await trio.serve_listeners(self._connection, [listener], handler_nursery=nursery)

    def _adopt_registry(self) -> None:
        """Mounts recorded by an earlier daemon that died are dead now: keep them, stale
        (those no longer in the mount table, after a reboot say, are simply forgotten,
        unless they are writable: an overlay is kept until committed or discarded)."""
        for rec in registry.load(self.paths.registry):
            rw = rec.mode == "rw" and bool(rec.overlay) and overlays.exists(rec.overlay)
            if not rw and not mountpoints.is_mounted(rec.mountpoint):
                continue
            if rec.state == MOUNTED:
                rec.state, rec.reason = STALE, "its daemon died" + (f"; {KEPT}" if rw else "")
            self.mounts[rec.mountpoint] = Mount(rec, None)
        self._adopt_overlays()
        if self.mounts:
            log.warning("%d stale mount(s) from an earlier daemon; 'datamonfs unmount' clears them",
                        len(self.mounts))
        self._save()

    def _adopt_overlays(self) -> None:
        """Overlays no record names (a registry lost in a crash): stale writable mounts."""
        named = {m.record.overlay for m in self.mounts.values()}
        for directory, info in overlays.scan(self.paths):
            if directory in named or info.mountpoint in self.mounts:
                continue
            self.mounts[info.mountpoint] = Mount(MountRecord(
                mountpoint=info.mountpoint, ref=f"{info.repo}:{info.branch}", repo=info.repo,
                bundle=info.bundle, uid=info.uid, worker_pid=0, daemon_pid=os.getpid(),
                since=info.created, mode="rw", state=STALE, reason=f"recovered; {KEPT}",
                branch=info.branch, overlay=directory), None)

    def _save(self) -> None:
        registry.save(self.paths.registry, [m.record for m in self.mounts.values()])

    async def _signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for sig in signals:
                log.info("%s: unmounting everything", signal.Signals(sig).name)
                await self.shutdown()
                return

    async def shutdown(self) -> None:
        if self.closing:
            return
        self.closing = True
        async with trio.open_nursery() as n:
            for m in list(self.mounts.values()):
                n.start_soon(self._unmount_quietly, m)
        if self._spare is not None:
            await self._spare.kill()
        log.info("daemon %d stopped", os.getpid())
        self.nursery.cancel_scope.cancel()

    async def _unmount_quietly(self, m: Mount) -> None:
        try:
            await self._unmount(m, force=True)
        except Exception:
            log.exception("could not unmount %s", m.record.mountpoint)

    # -- workers -------------------------------------------------------------

    async def _spawn(self) -> WorkerProcess:
        worker = await WorkerProcess.spawn(self.log_fd)
        self.nursery.start_soon(worker.wait)  # reaps it whatever happens to it
        return worker

    async def _refill(self) -> None:
        """Keep one idle worker ready, so a mount need not wait for Python to start."""
        if self._refilling or self.closing:
            return
        self._refilling = True
        try:
            if self._spare is None or not self._spare.alive():
                self._spare = await self._spawn()
        except Exception:
            log.exception("could not start a spare worker")
        finally:
            self._refilling = False

    async def _take_worker(self) -> WorkerProcess:
        spare, self._spare = self._spare, None
        self.nursery.start_soon(self._refill)
        if spare is not None and spare.alive():
            return spare
        return await self._spawn()

    async def _watch(self, mp: str, worker: WorkerProcess) -> None:
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
        self._save()

    # -- the control socket --------------------------------------------------

    async def _connection(self, stream: trio.SocketStream) -> None:
        chan = protocol.LineStream(stream)
        try:
            peer = auth.peer_of(stream.socket)
            if not auth.allowed(peer, self.group):
                log.warning("refused a connection from uid %d (pid %d)", peer.uid, peer.pid)
                await chan.send(protocol.error(None, "forbidden",
                                               f"uid {peer.uid} may not use this daemon"))
                return
            while True:
                try:
                    line = await chan.receive_line()
                except protocol.LineTooLong:
                    await chan.send(protocol.error(None, "too_large",
                                                   f"request longer than {protocol.MAX_LINE} bytes"))
                    continue
                if line is None:
                    return
                await chan.send(await self.dispatch(line, peer))
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
            pass  # the client went away; nothing to answer
        finally:
            await stream.aclose()

    async def dispatch(self, line: bytes, peer: auth.Peer) -> dict:
        rid = None
        try:
            req = protocol.decode(line)
            rid = protocol.request_id(req)
            op = req.get("op")
            handler = self.ops.get(op) if isinstance(op, str) else None
            if handler is None:
                raise protocol.ProtocolError(f"unknown op {op!r:.40}; known ops: "
                                             f"{', '.join(sorted(self.ops))}", "unknown_op")
            return protocol.ok(rid, **await handler(req, peer))
        except DatamonError as e:
            return protocol.error_from(rid, e)
        except Exception as e:
            log.exception("request failed")
            return protocol.error(rid, "internal", f"internal error: {type(e).__name__}: {e}")

    # -- ops -----------------------------------------------------------------

    async def _mountpoint(self, req: dict) -> str:
        mp = protocol.field(req, "mountpoint")
        if not os.path.isabs(mp) or "\0" in mp:
            raise protocol.ProtocolError("mountpoint must be an absolute path")
        return await trio.to_thread.run_sync(mountpoints.normalize, mp, limiter=self.blocking)

    async def op_mount(self, req: dict, peer: auth.Peer) -> dict:
        ref = protocol.field(req, "ref")
        mp = await self._mountpoint(req)
        rw = self._writable_fields(req, ref)
        if self.closing:
            raise Refused("the daemon is shutting down", "shutting_down")
        m = self.mounts.get(mp)
        if m is not None and rw and m.record.mode == "rw" and m.record.state == STALE:
            self._check_owner(m, peer)  # resume its overlay below
            if (m.record.repo, m.record.branch) != (rw["repo"], rw["branch"]):
                raise Refused(f"{mp} has staged changes for {m.record.repo}:{m.record.branch}; "
                              f"mount that, or discard them with 'datamonfs unmount --discard "
                              f"{mp}'", "already_mounted")
        elif m is not None:
            if m.record.state == STALE:
                raise Refused(f"{mp} has a stale datamonfs mount ({m.record.reason}); "
                              f"run 'datamonfs unmount {mp}' first", "already_mounted")
            if self._same_mount(m.record, ref, rw):
                # Asking again for what is there (a documented way to resume after a
                # crash, which something may have done already) succeeds.
                self._check_owner(m, peer)
                return {"mount": m.record.to_json(), "already": True}
            raise Refused(f"{mp} is already mounted ({m.record.ref}, bundle "
                          f"{m.record.bundle[:12]})", "already_mounted")
        if mp in self.pending:
            raise Refused(f"{mp} is being mounted already", "already_mounted")
        self.pending.add(mp)
        try:
            record = await self._start(mp, ref, peer, rw)
            return {"mount": record.to_json()}
        finally:
            self.pending.discard(mp)

    @staticmethod
    def _same_mount(rec: MountRecord, ref: str, rw: dict | None) -> bool:
        if rw is None:
            return rec.mode == "ro" and rec.ref == ref
        return (rec.mode == "rw" and not rw["new"]
                and (rec.repo, rec.branch) == (rw["repo"], rw["branch"]))

    def _writable_fields(self, req: dict, ref: str) -> dict | None:
        """For `rw`: the repo and branch a writable mount follows, and its overlay fields."""
        if not protocol.field(req, "rw", bool, required=False):
            return None
        new = bool(protocol.field(req, "new", bool, required=False))
        repo, name = parse_ref(ref)
        branch = protocol.field(req, "branch", str, required=False)
        if new and (name or not branch):
            raise protocol.ProtocolError("a new writable mount takes ref REPO and a branch name")
        branch = branch if new else (name or DEFAULT_BRANCH)
        check_name(branch, "branch name")
        return {"rw": True, "new": new, "repo": repo, "branch": branch}

    async def _start(self, mp: str, ref: str, peer: auth.Peer, rw: dict | None) -> MountRecord:
        """Mount at mp (clearing a dead writable mount there first) and record it."""
        extra = {}
        if rw:
            overlay = overlays.overlay_dir(self.paths, mp)
            existed = await trio.to_thread.run_sync(overlays.exists, overlay)
            await trio.to_thread.run_sync(mountpoints.clear, mp, limiter=self.blocking)
            extra = {**rw, "overlay": overlay}
        await trio.to_thread.run_sync(mountpoints.check, mp, peer.uid, limiter=self.blocking)
        worker = await self._take_worker()
        try:
            ready = await worker.mount({"ref": ref, "mountpoint": mp, "uid": peer.uid,
                                        "gid": peer.gid, **extra})
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
                             branch=extra.get("branch", ""), overlay=extra.get("overlay", ""))
        self.mounts[mp] = Mount(record, worker)
        self._save()
        self.nursery.start_soon(self._watch, mp, worker)
        log.info("mounted %s (bundle %s) at %s for uid %d, worker %d%s", ref,
                 record.bundle or "none", mp, peer.uid, worker.pid, ", writable" if rw else "")
        if rw and ready.get("recovered"):
            log.info("finished the commit of %s a crash interrupted: bundle %s", mp,
                     ready["recovered"])
        return record

    async def op_unmount(self, req: dict, peer: auth.Peer) -> dict:
        mp = await self._mountpoint(req)
        m = self.mounts.get(mp)
        if m is None:
            raise NotFound(f"no datamonfs mount at {mp}; see 'datamonfs mounts'")
        self._check_owner(m, peer)
        if m.unmounting:
            raise Refused(f"{mp} is being unmounted already", "busy")
        committed = None
        rw = m.record.mode == "rw"
        if rw and not protocol.field(req, "discard", bool, required=False):
            # Never lose what is staged: commit it (the default), or refuse.
            if protocol.field(req, "commit", bool, required=False) is False:
                status = await self._ask(m, peer, "status", limit=0)
                if status["total"]:
                    raise Refused(f"{mp} has {status['total']} staged change(s); commit them "
                                  f"('datamonfs commit {mp}') or discard them ('datamonfs unmount "
                                  f"--discard {mp}')", "busy")
            else:
                author = protocol.field(req, "author", dict, required=False)
                if not author:
                    raise Refused("committing on unmount needs an author; run 'datamonfs config "
                                  "create', or unmount with --discard", "config")
                committed = await self._ask(m, peer, "commit", timeout=COMMIT_TIMEOUT,
                                            message=f"committed by unmount of {mp}", author=author)
        await self._unmount(m, force=bool(req.get("force")), drop_overlay=rw)
        return {"mountpoint": mp, "commit": committed}

    def _check_owner(self, m: Mount, peer: auth.Peer) -> None:
        if not auth.is_privileged(peer) and peer.uid != m.record.uid:
            raise Refused(f"{m.record.mountpoint} was mounted by another user", "forbidden")

    async def _unmount(self, m: Mount, force: bool, drop_overlay: bool = False) -> None:
        """Unmount; a writable mount's overlay is deleted with `drop_overlay` (committed or
        discarded), else kept with its record, stale, for a later mount to resume."""
        mp = m.record.mountpoint
        m.unmounting = True
        try:
            ok, err = await trio.to_thread.run_sync(mountpoints.fusermount, mp,
                                                    limiter=self.blocking)
            mounted = not ok and await trio.to_thread.run_sync(mountpoints.is_mounted, mp)
            if mounted and m.worker is not None and not force:
                raise Refused(f"{mp} is busy ({err}); close its files and leave the directory, "
                              "then retry", "busy")
            if mounted:  # a dead mount, or shutting down: detach it lazily
                ok, err = await trio.to_thread.run_sync(mountpoints.clear, mp,
                                                        limiter=self.blocking)
                if not ok:
                    raise Refused(f"cannot unmount {mp}: {err}", "busy")
            if m.worker is not None:
                with trio.move_on_after(10):
                    await m.worker.exited.wait()
                if not m.worker.exited.is_set():
                    await m.worker.stop()
            if m.record.mode == "rw" and not drop_overlay:
                m.worker = None
                m.record.state, m.record.reason = STALE, f"the daemon stopped; {KEPT}"
            else:
                if m.record.mode == "rw":
                    await trio.to_thread.run_sync(overlays.discard, m.record.overlay)
                self.mounts.pop(mp, None)
            self._save()
            log.info("unmounted %s", mp)
        finally:
            m.unmounting = False

    async def op_list(self, req: dict, peer: auth.Peer) -> dict:
        return {"mounts": [m.record.to_json() for m in self.mounts.values()]}

    async def op_status(self, req: dict, peer: auth.Peer) -> dict:
        if req.get("mountpoint") is not None:  # what a writable mount has staged
            m = await self._writable(req, peer)
            limit = protocol.field(req, "limit", int, required=False)
            return await self._ask(m, peer, "status", limit=STATUS_LIMIT if limit is None else limit)
        workers = {}

        async def ask(mp: str, w: WorkerProcess) -> None:
            reply = await w.ask("stats", timeout=2)
            workers[mp] = {"pid": w.pid, **(reply or {}).get("stats", {})}

        async with trio.open_nursery() as n:
            for mp, m in self.mounts.items():
                if m.worker is not None and m.worker.alive():
                    n.start_soon(ask, mp, m.worker)
        return {"pid": os.getpid(), "version": __version__, "socket": self.paths.socket,
                "log": self.paths.log, "registry": self.paths.registry,
                "uptime": round(time.time() - self.started, 3),
                "mounts": len(self.mounts),
                "stale": sum(m.record.state == STALE for m in self.mounts.values()),
                "workers": workers}

    async def op_commit(self, req: dict, peer: auth.Peer) -> dict:
        m = await self._writable(req, peer)
        message = protocol.field(req, "message")
        label = protocol.field(req, "label", str, required=False)
        if label is not None:
            check_name(label, "label name")
        author = protocol.field(req, "author", dict)
        if not all(isinstance(author.get(k), str) for k in ("name", "email")):
            raise protocol.ProtocolError("field 'author' needs a name and an email")
        return await self._ask(m, peer, "commit", timeout=COMMIT_TIMEOUT, message=message,
                               label=label, author={"name": author["name"],
                                                    "email": author["email"]})

    async def _writable(self, req: dict, peer: auth.Peer) -> Mount:
        mp = await self._mountpoint(req)
        m = self.mounts.get(mp)
        if m is None or m.record.mode != "rw":
            raise NotFound(f"no writable datamonfs mount at {mp}; see 'datamonfs mounts'")
        self._check_owner(m, peer)
        return m

    async def _ask(self, m: Mount, peer: auth.Peer, op: str, timeout: float = 60,
                   **fields) -> dict:
        """A writable mount's worker answers `op`; a stale one is mounted again first
        (resuming its overlay), so what it staged can always be committed."""
        mp = m.record.mountpoint
        if m.unmounting or mp in self.pending:
            raise Refused(f"{mp} is being mounted or unmounted; retry", "busy")
        if m.worker is None:
            self.pending.add(mp)
            try:
                rw = {"rw": True, "new": False, "repo": m.record.repo, "branch": m.record.branch}
                await self._start(mp, m.record.ref, peer, rw)
            finally:
                self.pending.discard(mp)
            m = self.mounts[mp]
        reply = await m.worker.ask(op, timeout=timeout, **fields)
        if reply is None:
            raise Refused(f"the worker of {mp} did not answer {op!r}; see the daemon log",
                          "unavailable")
        if not reply.get("ok"):
            err = reply.get("error") or {}  # passed on with its code (the CLI's exit status)
            raise Refused(str(err.get("message", f"{op} failed")), str(err.get("code", "internal")))
        if op == "commit" and reply.get("bundle"):
            m.record.bundle = reply["bundle"]
            self._save()
        return {k: v for k, v in reply.items() if k not in ("id", "ok")}

    async def op_cache_stats(self, req: dict, peer: auth.Peer) -> dict:
        def stats() -> dict:
            from ..cache import open_cache
            from ..core import config

            blocks, _ = open_cache(config.load())
            return blocks.stats()

        return {"cache": await trio.to_thread.run_sync(stats, limiter=self.blocking)}

    async def op_shutdown(self, req: dict, peer: auth.Peer) -> dict:
        if not auth.is_privileged(peer):
            raise Refused("only root or the daemon's user may stop it", "forbidden")
        self.nursery.start_soon(self.shutdown)
        return {"pid": os.getpid()}
