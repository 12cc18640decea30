"""Node mode: one daemon per Kubernetes node (or host) that every pod on it shares.

`datamonfs daemon start --node [--root ROOT]` keeps everything under ROOT (a hostPath in
Kubernetes), so a restarted or upgraded daemon finds what the last one left:

    ROOT/config.toml   the node config (node_config.py); DATAMONFS_CONFIG names another
    ROOT/cache/        XDG_CACHE_HOME: the block cache, one per node
    ROOT/state/        XDG_STATE_HOME: log, mount registry, overlays, pod bindings
    ROOT/data/         XDG_DATA_HOME: the default local store, when the config names none
    ROOT/mounts/       NAMESPACE/POD/NAME: the pods' mounts, on a mount point with shared
                       propagation, so a container that mounts ROOT/mounts with
                       HostToContainer propagation sees mounts appear and disappear

The control socket is /run/datamonfs/daemon.sock (another hostPath, which pods mount),
open to every uid (pods run as any): who may do what is decided per request by
pods.py. On SIGTERM the daemon drains: it refuses new requests, unmounts read-only
mounts, and keeps (or commits, `on_stop`) what writable mounts staged.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os

import trio

from ..fs import mountinfo
from . import mountpoints
from .lifecycle import MountTable
from .node_config import NodeConfig
from .pod_identity import Bindings, evidence_of
from .registry import STALE

log = logging.getLogger(__name__)

DEFAULT_ROOT = "/var/lib/datamonfs"
DEFAULT_SOCKET = "/run/datamonfs/daemon.sock"
SOCKET_MODE = 0o666  # pods run as any uid; pods.py checks every request

_MS_BIND, _MS_REC, _MS_SHARED = 0x1000, 0x4000, 1 << 20


def setup_environment(root: str) -> None:
    """Point this process (and the mount workers it starts) at ROOT: config, cache, state."""
    root = os.path.abspath(root)
    os.environ.setdefault("DATAMONFS_CONFIG", os.path.join(root, "config.toml"))
    for var, sub in (("XDG_CACHE_HOME", "cache"), ("XDG_STATE_HOME", "state"),
                     ("XDG_DATA_HOME", "data")):
        os.environ[var] = os.path.join(root, sub)
    os.makedirs(os.path.join(root, "mounts"), mode=0o755, exist_ok=True)
    os.chmod(root, 0o755)


def share(path: str) -> None:
    """Make `path` a mount point with shared propagation: bind it onto itself unless it is
    a mount point already (in Kubernetes, the mounts volume with Bidirectional
    propagation is), then mark it shared, so mounts made below it reach every mount
    namespace holding a slave copy of it (a pod's hostPath volume with HostToContainer)."""
    libc = ctypes.CDLL(None, use_errno=True)

    def mount(source: str | None, flags: int) -> None:
        if libc.mount(source and source.encode(), path.encode(), None, flags, None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"cannot make {path} a shared mount point: {os.strerror(err)}"
                               + (" (the node daemon must run as root, privileged)"
                                  if err == errno.EPERM else ""))

    if mountinfo.find(path) is None:
        mount(path, _MS_BIND | _MS_REC)
    mount(None, _MS_SHARED | _MS_REC)


class Node:
    """What the supervisor holds in node mode: the root, the config, the pods' bindings."""

    def __init__(self, root: str, config: NodeConfig):
        self.root = os.path.abspath(root)
        self.config = config
        self.mounts = os.path.join(self.root, "mounts")
        self.bindings = Bindings(os.path.join(self.root, "state", "pods.json"))
        own = evidence_of(os.getpid())
        assert own is not None
        self.own = own  # a peer with the daemon's own evidence is the node's administrator

    @classmethod
    def open(cls, root: str) -> "Node":
        """Blocking, once setup_environment has run: read the config, share ROOT/mounts."""
        from .node_config import load

        node = cls(root, load())
        share(node.mounts)
        return node

    def describe(self) -> str:
        return (f"root {self.root}, store {self.config.store.url}, "
                f"{len(self.config.namespaces)} namespace(s) allowed, on stop: "
                f"{self.config.on_stop}")

    async def clear_dead_mounts(self, table: MountTable) -> None:
        """After a crash or an upgrade: the mounts the last daemon left are dead (ENOTCONN in
        every pod); clear them. Writable ones keep their overlays, resumed when asked for
        again (or committed, discarded by the administrator); read-only ones are forgotten."""
        for mp, m in list(table.mounts.items()):
            if m.record.state != STALE:
                continue
            ok, err = await trio.to_thread.run_sync(mountpoints.clear, mp)
            if not ok:
                log.error("cannot clear the dead mount %s: %s", mp, err)
            elif m.record.mode != "rw":
                del table.mounts[mp]
            log.info("cleared the dead mount %s left by the last daemon%s", mp,
                     "; its staged changes are kept" if m.record.mode == "rw" else "")
        table.save()
