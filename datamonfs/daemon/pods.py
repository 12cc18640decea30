"""The node daemon's door: every request passes here before it reaches an op.

A pod names itself (`pod`) and its mounts by `name`, never by path: this module checks
which pod the connection really comes from (pod_identity.py), what the pod's namespace
may use (the allow-list of node_config.py), turns the name into the mountpoint
ROOT/mounts/NAMESPACE/POD/NAME and hands the request to the ops every daemon has
(lifecycle.py), which then see a peer acting for that pod. A request naming another
store than the node's is refused: pods never bring credentials, and the node serves
one store. The node's administrator (a peer with the daemon's own evidence: its pod,
or the host) uses the ops as they are.

A pod's mounts are released when it asks (`release`), or when it is gone: no process on
the node has its evidence any more (node_config `pod_check_seconds`).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os

import trio

from ..core.names import check_name, parse_ref, split_ref
from ..core.stores import StoreSpec
from ..errors import DatamonError
from . import auth, mountpoints, protocol
from .control import Handler
from .limits import COMMIT_TIMEOUT
from .lifecycle import Mount, MountTable
from .node import Node
from .pod_identity import Evidence, PodName, live_keys, logged_pod, parse_pod, peer_evidence
from .protocol import Refused
from .registry import MountRecord

log = logging.getLogger(__name__)

# What a pod may ask; everything else (shutdown, cache, status of the daemon) is the
# administrator's.
POD_OPS = frozenset({"mount", "unmount", "commit", "status", "list", "release", "wait"})
_NAMED = frozenset({"mount", "unmount", "commit", "status"})  # ops on one mount, by name


class PodGate:
    def __init__(self, node: Node, table: MountTable):
        self.node = node
        self.table = table
        self.blocking = trio.CapacityLimiter(4)

    def wrap(self, ops: dict[str, Handler]) -> dict[str, Handler]:
        ops = {**ops, "release": self.op_release}
        return {op: functools.partial(self._door, op, handler) for op, handler in ops.items()}

    async def _thread(self, fn, *args):
        return await trio.to_thread.run_sync(fn, *args, limiter=self.blocking)

    # -- the door ----------------------------------------------------------------

    async def _door(self, op: str, handler: Handler, req: dict, peer: auth.Peer) -> dict:
        ev = await self._thread(peer_evidence, peer.pid)
        admin = ev.key == self.node.own.key
        if not admin and op not in POD_OPS:
            raise Refused(f"pods may not use {op!r}; it is the node administrator's",
                          "forbidden")
        served = self.node.config.store
        if "store" in req and StoreSpec.from_json(req["store"]).url != served.url:
            raise Refused(f"this node's daemon serves the store {served.url} only, not "
                          f"{req['store'].get('url')!r:.200}; pods never name a store",
                          "forbidden")
        req = {**req, "store": served.to_json()}  # what every op below opens
        if admin:
            return await handler(req, peer)
        if "mountpoint" in req:
            raise Refused("a pod names its mounts ('name'), never a path", "forbidden")
        if "pod" not in req:
            raise Refused("this daemon serves pods: name yours (set DATAMONFS_POD_NAMESPACE "
                          "and DATAMONFS_POD_NAME; see docs/KUBERNETES.md)", "forbidden")
        pod = await self._identify(req["pod"], ev)
        acting = dataclasses.replace(peer, pod=str(pod))
        if op == "list":
            return {"mounts": [self.record_json(m.record) for m in self._mounts_of(pod)]}
        if op == "release":
            return await self.release(pod)
        if op == "wait":
            self._check_access(pod, parse_ref(protocol.field(req, "ref"))[0], writable=False)
            return await handler(req, acting)
        name = check_name(protocol.field(req, "name"), "mount name")
        if op == "mount":
            repo = split_ref(protocol.field(req, "ref")).repo
            self._check_access(pod, repo, writable=bool(req.get("rw")))
            mp = await self._thread(self._make_dirs, pod, name, peer.uid, peer.gid)
        else:
            mp = os.path.join(self._pod_dir(pod), name)
        if op in ("commit", "unmount") and not req.get("author"):
            author = self.node.config.author  # pods bring no config of their own
            req = {**req, "author": {"name": author.name, "email": author.email}}
        reply = await handler({**req, "mountpoint": mp}, acting)
        if isinstance(reply.get("mount"), dict):
            reply = {**reply, "mount": {**reply["mount"], "path": self._relative(mp)}}
        return reply

    async def _identify(self, claimed: object, ev: Evidence) -> PodName:
        pod = parse_pod(claimed)
        logs = self.node.config.pod_logs
        if ev.pod_uid and logs and os.path.isdir(logs):
            known = await self._thread(logged_pod, logs, ev.pod_uid)
            if known != pod:
                raise Refused(f"this connection comes from "
                              f"{'pod ' + str(known) if known else 'a pod kubelet does not list'}"
                              f", not from {pod}", "forbidden")
        self.node.bindings.claim(pod, ev)
        return pod

    def _check_access(self, pod: PodName, repo: str, writable: bool) -> None:
        if not self.node.config.access(pod.namespace).allows(repo, writable):
            raise Refused(f"namespace {pod.namespace!r} may not "
                          f"{'write' if writable else 'read'} repo {repo!r}: see the allow-list "
                          f"[node.namespaces.{pod.namespace}] of {self.node.config.path}",
                          "forbidden")

    # -- the pods' directories ---------------------------------------------------

    def _pod_dir(self, pod: PodName) -> str:
        return os.path.join(self.node.mounts, pod.namespace, pod.name)

    def _relative(self, path: str) -> str:
        return os.path.relpath(path, self.node.mounts)

    def record_json(self, record: MountRecord) -> dict:
        return {**record.to_json(), "path": self._relative(record.mountpoint)}

    def _mounts_of(self, pod: PodName) -> list[Mount]:
        prefix = self._pod_dir(pod) + "/"
        return [m for m in self.table.mounts.values() if m.record.mountpoint.startswith(prefix)]

    def _make_dirs(self, pod: PodName, name: str, uid: int, gid: int) -> str:
        """Blocking: NAMESPACE/POD/NAME under ROOT/mounts, never through a symlink, NAME
        owned by the pod's user (it mounts there as itself)."""
        path = os.path.join(self._pod_dir(pod), name)
        if mountpoints.is_mounted(path):
            return path  # the mount op says what is there; never stat a (dead) mount
        fd = os.open(self.node.mounts, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            for part in (pod.namespace, pod.name, name):
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
                try:
                    inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                                    dir_fd=fd)
                except OSError as e:
                    raise Refused(f"cannot use {path}: {e.strerror}", "bad_mountpoint") from None
                os.close(fd)
                fd = inner
            os.fchown(fd, uid, gid)
        finally:
            os.close(fd)
        return path

    def _remove_dirs(self, pod: PodName) -> None:
        """Blocking: the pod's empty directories (a kept overlay's mountpoint stays)."""
        kept = {m.record.mountpoint for m in self._mounts_of(pod)}
        pod_dir = self._pod_dir(pod)
        try:
            names = os.listdir(pod_dir)
        except OSError:
            return
        for name in names:
            path = os.path.join(pod_dir, name)
            if path not in kept and not mountpoints.is_mounted(path):
                _rmdir(path)
        _rmdir(pod_dir)
        _rmdir(os.path.dirname(pod_dir))

    # -- letting go of mounts ------------------------------------------------------

    async def op_release(self, req: dict, peer: auth.Peer) -> dict:
        """The administrator's `release` (a pod's own goes through the door)."""
        return await self.release(parse_pod(protocol.field(req, "pod", dict)))

    async def release(self, pod: PodName) -> dict:
        """Unmount every mount of the pod; writable ones keep (or commit) what is staged."""
        released = []
        for m in self._mounts_of(pod):
            released.append(self._relative(m.record.mountpoint))
            await self.let_go(m, f"released for pod {pod}")
        await self._thread(self._remove_dirs, pod)
        log.info("released %d mount(s) of pod %s", len(released), pod)
        return {"released": released}

    async def let_go(self, m: Mount, why: str) -> None:
        """Unmount, busy or not. What a writable mount staged is committed first when the
        node config says on_stop = "commit", else kept for a later mount to resume."""
        commit = (m.record.mode == "rw" and m.worker is not None
                  and self.node.config.on_stop == "commit")
        try:
            if commit:
                author = self.node.config.author
                r = await self.table.ask(m, _ADMIN, "commit", timeout=COMMIT_TIMEOUT,
                                         message=f"committed by the node daemon: {why}",
                                         author={"name": author.name, "email": author.email})
                log.info("%s: committed %s as bundle %s", why, m.record.mountpoint,
                         r.get("bundle") or "(nothing staged)")
            await self.table.unmount(m, force=True, drop_overlay=commit, reason=why)
        except (DatamonError, OSError) as e:
            log.error("%s: could not let go of %s: %s", why, m.record.mountpoint, e)

    async def drain(self) -> None:
        """On SIGTERM: every mount, at once."""
        async with trio.open_nursery() as n:
            for m in list(self.table.mounts.values()):
                n.start_soon(self.let_go, m, "the node daemon stopped")

    async def watch_pods(self) -> None:
        """Release the mounts of pods that are gone, every pod_check_seconds."""
        while True:
            await trio.sleep(self.node.config.pod_check_seconds)
            live = await self._thread(live_keys)
            for pod, key in self.node.bindings.pods().items():
                if key not in live:
                    log.info("pod %s is gone: releasing its mounts", pod)
                    await self.release(pod)
                    self.node.bindings.forget(pod)


_ADMIN = auth.Peer(os.getpid(), 0, 0)


def _rmdir(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass
