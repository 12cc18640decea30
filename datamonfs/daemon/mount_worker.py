"""A mount worker: one process, one pyfuse3 session, one mount.

pyfuse3 keeps a single FUSE session per process, so the supervisor starts a
worker per mount. A worker starts idle (imports done, so a mount is quick),
waits for its mount request on a private socket, mounts, says "ready", and
serves until the file system is unmounted. It answers stats requests on the
same socket. If the supervisor goes away the worker stops serving without
unmounting: a dead mount (ENOTCONN) is safer than one that silently turns into
the empty directory below it, where a program could write results that vanish.

Run as: python -m datamonfs.daemon.mount_worker CHANNEL_FD
(the supervisor's handle on it is worker_process.py)
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys

import pyfuse3
import trio

from ..core import config
from ..core.model import Provenance
from ..core.repository import Author
from ..core.stores import StoreSpec
from ..errors import DatamonError
from ..cache import FileReader, cached_repository
from ..fs import readonly, writable
from ..fs.mountinfo import after_init, set_dirty_limit, set_read_ahead
from ..fs.readonly import MountInfo, ReadOnlyFS
from ..fs.writable_session import WritableRequest, WritableSession
from . import protocol

log = logging.getLogger("datamonfs.worker")

READ_AHEAD_KB = int(os.environ.get("DATAMONFS_READ_AHEAD_KB", "1024"))
DIRTY_LIMIT = 256 << 20  # unwritten pages the kernel may hold for a writable mount
GC_YOUNG = 20_000  # allocations between young collections (Python's default: 700)


def open_repository(req: dict):
    """Blocking: the store the mount request names (never the daemon's own config's),
    through the shared cache. A worker serves one store, so the store's timeout and
    emulator host become its environment (read by the store and its deadlines)."""
    spec = StoreSpec.from_json(req.get("store"))
    os.environ.pop("STORAGE_EMULATOR_HOST", None)  # the daemon's own: not this store's
    os.environ.update(spec.environment())
    return cached_repository(config.load(), spec)


def prepare(req: dict) -> ReadOnlyFS:
    """Blocking: open the store and cache, resolve the ref once, build the file system."""
    repo, reader = open_repository(req)
    bundle = repo.resolve(req["ref"])
    owner = _owner(req) or (int(req.get("uid", os.getuid())), int(req.get("gid", os.getgid())))
    info = MountInfo(ref=req["ref"], uid=owner[0], gid=owner[1])
    return ReadOnlyFS(repo, reader, bundle, info, FileReader)


def _owner(req: dict) -> tuple[int, int] | None:
    """`owner_uid`/`owner_gid` (mount --uid/--gid, checked by the supervisor), if given."""
    if req.get("owner_uid") is None:
        return None
    return int(req["owner_uid"]), int(req["owner_gid"])


def prepare_writable(req: dict) -> WritableSession:
    """Blocking: open the store and cache, and the mount's overlay (resumed if it exists)."""
    repo, reader = open_repository(req)
    return WritableSession.open(repo, reader, WritableRequest(
        repo=req["repo"], branch=req["branch"], new=bool(req.get("new")),
        create=bool(req.get("create")), overlay=req["overlay"],
        mountpoint=req["mountpoint"], uid=int(req.get("uid", os.getuid())),
        gid=int(req.get("gid", os.getgid())), owner=_owner(req)))


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class MountWorker:
    def __init__(self, chan: protocol.LineStream):
        self.chan = chan
        self.fs: ReadOnlyFS | None = None
        self.session: WritableSession | None = None  # writable mounts
        self.unmount_on_exit = True

    async def run(self) -> int:
        await self.chan.send({"event": "idle", "pid": os.getpid()})
        req = await self.chan.receive()
        if req is None or req.get("op") != "mount":
            return 0  # supervisor gone before it needed us
        mountpoint = req["mountpoint"]
        try:
            if req.get("rw"):
                self.session = await trio.to_thread.run_sync(prepare_writable, req)
                writable.init_session(self.session.fs, mountpoint)
            else:
                self.fs = await trio.to_thread.run_sync(prepare, req)
                pyfuse3.init(self.fs, mountpoint, readonly.mount_options(self.fs))
        except DatamonError as e:
            if self.session is not None:
                self.session.close()
            await self.chan.send({"event": "failed", "error": {"code": e.code, "message": str(e)}})
            return 1
        except Exception as e:  # pyfuse3 reports mount failures as RuntimeError
            log.exception("mount of %s at %s failed", req.get("ref"), mountpoint)
            await self.chan.send({"event": "failed", "error": {
                "code": "mount_failed", "message": f"cannot mount at {mountpoint}: {e}"}})
            return 1
        if self.session is not None:
            ready = await trio.to_thread.run_sync(self.session.ready)
            log.info("mounted %s:%s writable (bundle %s) at %s%s", ready["repo"], ready["branch"],
                     ready["bundle"] or "none", mountpoint,
                     f"; finished commit {ready['recovered']}" if ready["recovered"] else "")
        else:
            b = self.fs.bundle
            ready = {"bundle": b.id, "repo": b.repo, "files": b.files, "bytes": b.bytes}
            log.info("mounted %s (bundle %s) at %s", req["ref"], b.id, mountpoint)
        # A directory page of 1,000 entries makes some 10,000 objects (its JSON, then the
        # entries the mount keeps): with a young collection every 700 allocations, and
        # full ones going over everything kept, the collector cost a cold `find` a fifth of
        # the worker's CPU. What the worker holds once mounted is frozen out of the
        # collections, and young ones come every GC_YOUNG allocations.
        gc.freeze()
        gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._channel, nursery.cancel_scope)
                nursery.start_soon(self._signals)
                nursery.start_soon(self._tune_then_ready, mountpoint, ready)
                await pyfuse3.main(min_tasks=2, max_tasks=64)
                nursery.cancel_scope.cancel()
        finally:
            # Unmounted from outside: nothing left to unmount. Supervisor gone: leave it dead.
            pyfuse3.close(unmount=self.unmount_on_exit)
            if self.session is not None:
                self.session.close()  # everything staged is in its database already
        log.info("stopped serving %s", mountpoint)
        return 0

    async def _tune_then_ready(self, mountpoint: str, ready: dict) -> None:
        """As root, raise the mount's read-ahead (the kernel then sends reads of up to 1 MiB,
        not 128 KiB) and a writable mount's dirty limit, once pyfuse3.main has answered the
        kernel's INIT (mountinfo.after_init); then tell the supervisor."""
        if os.geteuid() == 0:
            await after_init(mountpoint)
            if set_read_ahead(mountpoint, READ_AHEAD_KB):
                log.info("read-ahead of %s raised to %d KiB", mountpoint, READ_AHEAD_KB)
            if self.session is not None:
                set_dirty_limit(mountpoint, DIRTY_LIMIT)
        await self.chan.send({"event": "ready", "pid": os.getpid(), **ready})

    async def _channel(self, cancel_scope: trio.CancelScope) -> None:
        while True:
            try:
                req = await self.chan.receive()
            except (protocol.ProtocolError, protocol.LineTooLong):
                continue
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                req = None
            if req is None:
                log.warning("supervisor gone: stopping without unmounting")
                self.unmount_on_exit = False
                pyfuse3.terminate()
                return
            rid = protocol.request_id(req)
            if req.get("op") == "stats":
                await self.chan.send(protocol.ok(rid, stats=self.stats()))
            elif req.get("op") == "stop":
                await self.chan.send(protocol.ok(rid))
                pyfuse3.terminate()
            elif req.get("op") in ("commit", "status") and self.session is not None:
                await self.chan.send(await self._writable_op(rid, req))
            else:
                await self.chan.send(protocol.error(rid, "unknown_op", "unknown worker op"))

    async def _writable_op(self, rid, req: dict) -> dict:
        try:
            if req["op"] == "commit":
                author = req["author"]

                async def progress(done: int, total: int) -> None:
                    await self.chan.send({"id": rid, "progress": {
                        "phase": "commit", "done": done, "total": total}})

                return protocol.ok(rid, **await self.session.commit(
                    req["message"], Author(author["name"], author["email"]), req.get("label"),
                    progress if req.get("progress") else None,
                    Provenance.from_obj(req, "commit request")))
            return protocol.ok(rid, **await self.session.status(int(req["limit"])))
        except DatamonError as e:
            return protocol.error_from(rid, e)
        except Exception as e:
            log.exception("%s failed", req["op"])
            return protocol.error(rid, "internal", f"{req['op']} failed: {type(e).__name__}: {e}")

    async def _signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM) as signals:
            async for _ in signals:
                log.info("SIGTERM: unmounting")
                pyfuse3.terminate()
                return

    def stats(self) -> dict:
        if self.session is not None:
            return {**self.session.stats(), "rss": rss_bytes()}
        fs = self.fs
        return {**fs.stats, "rss": rss_bytes(), "directories": len(fs.inodes),
                "pages_cached": len(fs.pages), "open_files": fs.open_files()}


async def _main(fd: int) -> int:
    sock = trio.socket.from_stdlib_socket(socket.socket(fileno=fd))
    chan = protocol.LineStream(trio.SocketStream(sock))
    return await MountWorker(chan).run()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when we stop
    from logging.handlers import WatchedFileHandler

    log_path = os.environ.get("DATAMONFS_WORKER_LOG")  # the daemon's log, which rotates
    handler = WatchedFileHandler(log_path) if log_path else logging.StreamHandler(sys.stderr)
    logging.basicConfig(
        level=logging.INFO, handlers=[handler],
        format=f"%(asctime)s worker[{os.getpid()}] %(levelname)s %(message)s")
    sys.exit(trio.run(_main, int(sys.argv[1])))


if __name__ == "__main__":
    main()
