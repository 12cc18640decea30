"""The supervisor: the daemon's one trio process, behind the control socket.

It wires the parts together and answers the ops that concern the daemon as a
whole (status, cache_stats, shutdown). Each op is an entry in the table built in
`serve`; the mount ops (mount, unmount, list, commit, status of a mountpoint)
are lifecycle.py's, the socket and its framing control.py's, the idle workers
spares.py's, and what an earlier daemon left adoption.py's.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Callable

import trio

from .. import __version__
from . import adoption, auth
from .control import ControlServer, Handler
from .lifecycle import MountTable
from .paths import DaemonPaths
from .protocol import Refused
from .registry import STALE
from .node import Node
from .pods import PodGate
from .spares import SpareWorkers
from .store_ops import StoreOps
from .worker_process import WorkerProcess

log = logging.getLogger(__name__)


class Supervisor:
    def __init__(self, paths: DaemonPaths, group: int | None = None, log_fd: int | None = None,
                 node: Node | None = None):
        self.paths = paths
        self.group = group
        self.log_fd = log_fd  # the workers' stdout and stderr
        self.node = node  # node mode: one daemon for every pod of a node (node.py)
        self.gate: PodGate | None = None
        self.store_ops = StoreOps(paths)
        self.started = time.time()

    async def serve(self, listener: trio.SocketListener, on_ready: Callable[[], None]) -> None:
        mounts = adoption.adopt(self.paths)
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            self.spares = SpareWorkers(nursery, self.log_fd)
            self.table = MountTable(self.paths, self.spares, nursery, mounts)
            self.table.save()
            ops = self._ops()
            if self.node is not None:
                log.info("node mode: %s", self.node.describe())
                await self.node.clear_dead_mounts(self.table)
                self.gate = PodGate(self.node, self.table)
                ops = self.gate.wrap(ops)
                nursery.start_soon(self.gate.watch_pods)
            server = ControlServer(ops, self.group, everyone=self.node is not None,
                                   closing=lambda: self.table.closing)
            nursery.start_soon(self._signals)
            nursery.start_soon(self.spares.refill)
            on_ready()
            log.info("daemon %d serving %s", os.getpid(), self.paths.socket)
            await trio.serve_listeners(server.connection, [listener], handler_nursery=nursery)

    def _ops(self) -> dict[str, Handler]:
        return {
            "mount": self.op_mount,
            "unmount": self.table.op_unmount,
            "list": self.table.op_list,
            "status": self.op_status,
            "commit": self.table.op_commit,
            "cache_stats": self.op_cache_stats,
            "locality": self.store_ops.op_locality,
            "wait": self.store_ops.op_wait,
            "shutdown": self.op_shutdown,
        }

    async def _signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for sig in signals:
                log.info("%s: unmounting everything", signal.Signals(sig).name)
                await self.shutdown()
                return

    async def shutdown(self) -> None:
        if self.table.closing:
            return
        self.table.closing = True  # from now on every request is refused (control.py)
        if self.gate is not None:
            await self.gate.drain()  # keeps, or commits, what writable mounts staged
        await self.table.unmount_all()
        await self.spares.close()
        log.info("daemon %d stopped", os.getpid())
        self.nursery.cancel_scope.cancel()

    # -- ops -----------------------------------------------------------------

    async def op_mount(self, req: dict, peer: auth.Peer) -> dict:
        reply = await self.table.op_mount(req, peer)
        await trio.to_thread.run_sync(self.store_ops.note_served, reply["mount"])
        return reply

    async def op_status(self, req: dict, peer: auth.Peer) -> dict:
        if req.get("mountpoint") is not None:  # what a writable mount has staged
            return await self.table.op_staged(req, peer)
        mounts = self.table.mounts
        return {"pid": os.getpid(), "version": __version__, "socket": self.paths.socket,
                "node": self.node.root if self.node else None,
                "log": self.paths.log, "registry": self.paths.registry,
                "uptime": round(time.time() - self.started, 3),
                "mounts": len(mounts),
                "stale": sum(m.record.state == STALE for m in mounts.values()),
                "workers": await self._worker_stats()}

    async def _worker_stats(self) -> dict[str, dict]:
        """Each live worker's counters, asked all at once (one that does not answer
        within 2 s shows only its pid)."""
        workers = {}

        async def ask(mp: str, w: WorkerProcess) -> None:
            reply = await w.ask("stats", timeout=2)
            workers[mp] = {"pid": w.pid, **(reply or {}).get("stats", {})}

        async with trio.open_nursery() as n:
            for mp, m in self.table.mounts.items():
                if m.worker is not None and m.worker.alive():
                    n.start_soon(ask, mp, m.worker)
        return workers

    async def op_cache_stats(self, req: dict, peer: auth.Peer) -> dict:
        def stats() -> dict:
            from ..cache import open_cache
            from ..core import config

            blocks, _ = open_cache(config.load())
            return blocks.stats()

        return {"cache": await trio.to_thread.run_sync(stats, limiter=self.table.blocking)}

    async def op_shutdown(self, req: dict, peer: auth.Peer) -> dict:
        if not auth.is_privileged(peer):
            raise Refused("only root or the daemon's user may stop it", "forbidden")
        mounts = [{"mountpoint": m.record.mountpoint, "mode": m.record.mode,
                   "state": m.record.state} for m in self.table.mounts.values()]
        self.nursery.start_soon(self.shutdown)
        return {"pid": os.getpid(), "mounts": mounts}
