"""datamonfs pod mount|unmount|commit|mounts|release: mounts for a pod, from the node daemon.

In a pod the node daemon (docs/KUBERNETES.md) is reached through the socket
DATAMONFS_SOCKET names, and the pod says who it is with DATAMONFS_POD_NAMESPACE and
DATAMONFS_POD_NAME (Kubernetes' Downward API sets them). A mount has a name, not a
path: the daemon mounts it at ROOT/mounts/NAMESPACE/POD/NAME on the node, which the
container sees below DATAMONFS_MOUNTS, where it mounts ROOT/mounts (a hostPath with
HostToContainer propagation). `datamonfs run` and `datamonfs wait` use the same context.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import click

from ..daemon.client import Client
from ..daemon.limits import COMMIT_TIMEOUT
from ..errors import ConfigError
from . import writable
from .common import emit_json, info, json_option, load_config, socket_option

NAMESPACE_ENV, NAME_ENV, MOUNTS_ENV = ("DATAMONFS_POD_NAMESPACE", "DATAMONFS_POD_NAME",
                                       "DATAMONFS_MOUNTS")
DEFAULT_MOUNTS = "/var/lib/datamonfs/mounts"  # where the examples mount ROOT/mounts


@dataclass(frozen=True)
class PodContext:
    namespace: str
    name: str
    mounts: str  # ROOT/mounts as this container sees it

    def target(self, name: str) -> dict:
        """The request fields naming one of the pod's mounts."""
        return {"pod": self.identity(), "name": name}

    def identity(self) -> dict:
        return {"namespace": self.namespace, "name": self.name}

    def path(self, record: dict) -> str:
        """Where a mount the daemon reports is, in this container."""
        return os.path.join(self.mounts, record["path"])

    def author(self) -> dict:
        """The commit's author: the config's, if the pod has one, else the node's."""
        cfg = load_config()
        return {"author": {"name": cfg.name, "email": cfg.email}} if cfg.name and cfg.email else {}


def pod_from_env() -> PodContext | None:
    """The pod this process runs in, if the environment says so."""
    namespace, name = os.environ.get(NAMESPACE_ENV), os.environ.get(NAME_ENV)
    if not namespace and not name:
        return None
    if not namespace or not name:
        raise ConfigError(f"set both {NAMESPACE_ENV} and {NAME_ENV} (the Downward API's "
                          "metadata.namespace and metadata.name), or neither")
    return PodContext(namespace, name, os.environ.get(MOUNTS_ENV) or DEFAULT_MOUNTS)


def _context() -> PodContext:
    ctx = pod_from_env()
    if ctx is None:
        raise ConfigError(f"not in a pod: set {NAMESPACE_ENV} and {NAME_ENV} "
                          "(see docs/KUBERNETES.md)")
    return ctx


@click.group()
def pod() -> None:
    """Mounts for this pod from the node's daemon (docs/KUBERNETES.md).

    \b
    Environment: DATAMONFS_SOCKET (the node daemon's socket), DATAMONFS_POD_NAMESPACE and
    DATAMONFS_POD_NAME (this pod), DATAMONFS_MOUNTS (where the container mounts the
    node's ROOT/mounts; default /var/lib/datamonfs/mounts).
    """


@pod.command("mount")
@click.argument("ref")
@click.argument("name")
@click.option("--rw", is_flag=True, help="Writable: REF is REPO:BRANCH (created on the first "
                                         "commit when it does not exist).")
@socket_option
@json_option
def mount(ref: str, name: str, rw: bool, socket_path: str | None, as_json: bool) -> None:
    """Mount REF as NAME in this pod's directory; the last line printed is its path here."""
    ctx = _context()
    fields = {"rw": True, "create": True} if rw else {}
    with Client(socket_path) as c:
        reply = c.call("mount", timeout=300, ref=ref, **ctx.target(name), **fields)
    m = reply["mount"]
    if as_json:
        emit_json({**m, "container_path": ctx.path(m)})
        return
    info(f"{'already mounted' if reply.get('already') else 'mounted'} {ref} "
         f"(bundle {m['bundle'][:12] or 'none'}) as {name}")
    click.echo(ctx.path(m))


@pod.command("unmount")
@click.argument("name")
@click.option("--discard", is_flag=True, help="Writable: drop what is staged.")
@click.option("--keep", is_flag=True, help="Writable: keep what is staged, for a later mount.")
@socket_option
def unmount(name: str, discard: bool, keep: bool, socket_path: str | None) -> None:
    """Unmount NAME; a writable mount commits what it staged unless --discard or --keep."""
    if discard and keep:
        raise click.UsageError("--discard or --keep, not both")
    ctx = _context()
    fields = {"discard": True} if discard else {"keep": True} if keep else ctx.author()
    with Client(socket_path) as c:
        r = c.call("unmount", timeout=COMMIT_TIMEOUT, **ctx.target(name), **fields)
    if r.get("commit"):
        writable.report_commit(r["commit"], name)
    info(f"unmounted {name}")


@pod.command("commit")
@click.argument("name")
@click.option("-m", "--message", required=True, help="The bundle's message.")
@click.option("--label", default=None, metavar="NAME", help="Also set this label to the bundle.")
@socket_option
def commit(name: str, message: str, label: str | None, socket_path: str | None) -> None:
    """Commit what the writable mount NAME staged; the last line printed is the bundle id."""
    ctx = _context()
    with Client(socket_path) as c:
        r = c.call("commit", timeout=COMMIT_TIMEOUT, **ctx.target(name), message=message,
                   label=label, **ctx.author())
    writable.report_commit(r, name)


@pod.command("mounts")
@socket_option
@json_option
def mounts(socket_path: str | None, as_json: bool) -> None:
    """This pod's mounts: name, ref, bundle, state, path in this container."""
    ctx = _context()
    with Client(socket_path) as c:
        records = c.call("list", pod=ctx.identity())["mounts"]
    if as_json:
        emit_json([{**r, "container_path": ctx.path(r)} for r in records])
        return
    for r in records:
        click.echo(f"{os.path.basename(r['path'])}\t{r['ref']}\t{r['bundle']}\t{r['state']}\t"
                   f"{ctx.path(r)}")


@pod.command("release")
@socket_option
def release(socket_path: str | None) -> None:
    """Unmount every mount of this pod (writable ones keep what they staged, or commit it,
    as the node config says). The daemon also does this once the pod is gone."""
    ctx = _context()
    with Client(socket_path) as c:
        released = c.call("release", timeout=COMMIT_TIMEOUT, pod=ctx.identity())["released"]
    info(f"released {len(released)} mount(s)")
