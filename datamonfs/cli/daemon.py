"""datamonfs daemon start|stop|status, mount, unmount, mounts (commit, status: cli/writable.py)"""

from __future__ import annotations

import os
import time

import click

from ..daemon import offline
from ..daemon.client import Client, DaemonUnavailable, ensure_daemon, pid_alive
from ..daemon.limits import COMMIT_TIMEOUT
from ..daemon.mountpoints import normalize
from ..daemon.node import DEFAULT_ROOT, DEFAULT_SOCKET
from ..daemon.paths import paths_for
from ..daemon.service import run, start_background
from ..errors import DatamonError
from . import writable
from .common import emit_json, info, iso_time, json_option, load_config, socket_option
from .completion import complete_ref


@click.group()
def daemon() -> None:
    """The background process that serves mounts.

    `datamonfs mount` starts it on demand.
    """


@daemon.command("start")
@click.option("--foreground", is_flag=True, help="Stay attached; log to stderr as well.")
@click.option("--group", default=None, metavar="GROUP",
              help="Let members of GROUP use the socket (mode 0660).")
@click.option("--node", is_flag=True,
              help="Node mode: one daemon for every pod of a Kubernetes node (docs/KUBERNETES.md); "
                   f"socket {DEFAULT_SOCKET} unless --socket names another.")
@click.option("--root", default=None, metavar="DIR",
              help=f"With --node: config, cache, state and mounts under DIR (default {DEFAULT_ROOT}).")
@socket_option
def start(foreground: bool, group: str | None, node: bool, root: str | None,
          socket_path: str | None) -> None:
    """Start the daemon. Exits 1 when one already runs on the socket."""
    if root and not node:
        raise click.UsageError("--root goes with --node")
    node_root = os.path.abspath(root or DEFAULT_ROOT) if node else None
    if foreground:
        raise SystemExit(run(socket_path and os.path.abspath(socket_path), group,
                             foreground=True, node_root=node_root))
    pid = start_background(socket_path, group, node_root)
    paths = paths_for(socket_path or (DEFAULT_SOCKET if node else None))
    info(f"started the datamonfs daemon (pid {pid}) on {paths.socket}; log: {paths.log}")


@daemon.command("stop")
@socket_option
def stop(socket_path: str | None) -> None:
    """Unmount everything and stop the daemon (writable mounts keep what they staged).
    Exits 0 also when no daemon runs."""
    try:
        with Client(socket_path) as c:
            reply = c.call("shutdown")
    except DaemonUnavailable as e:
        if "no datamonfs daemon is running" not in str(e):
            raise
        info(f"no datamonfs daemon runs on {paths_for(socket_path).socket}; nothing to stop")
        return
    pid = reply["pid"]
    deadline = time.monotonic() + 60
    while pid_alive(pid):
        if time.monotonic() > deadline:
            raise DaemonUnavailable(f"the daemon (pid {pid}) did not stop within 60s")
        time.sleep(0.05)
    for m in reply.get("mounts", []):
        kept = " (staged changes kept)" if m.get("mode") == "rw" else ""
        info(f"unmounted {m.get('mountpoint')}{kept}")
    info(f"stopped the datamonfs daemon (pid {pid})")


@daemon.command("status")
@socket_option
@json_option
def status(socket_path: str | None, as_json: bool) -> None:
    """Show whether the daemon runs, and its mounts. Exits 3 when it does not run (with
    --json it prints {"running": false} first)."""
    try:
        with Client(socket_path) as c:
            s = c.call("status")
    except DaemonUnavailable:
        if as_json:
            emit_json({"running": False})
        else:
            click.echo("not running")
        raise
    s.pop("id", None)
    s.pop("ok", None)
    if as_json:
        emit_json({"running": True, **s})
        return
    click.echo(f"running: pid {s['pid']}, version {s['version']}, up {s['uptime']:.0f}s")
    click.echo(f"socket: {s['socket']}")
    click.echo(f"log: {s['log']}")
    click.echo(f"mounts: {s['mounts']} ({s['stale']} stale)")
    for mp, w in sorted(s["workers"].items()):
        rss = w.get("rss", 0) / 2**20
        click.echo(f"  {mp}: worker {w['pid']}, {rss:.0f} MiB, {w.get('reads', 0)} reads, "
                   f"{w.get('errors', 0)} errors")


@click.command("mount", short_help="Mount a bundle read-only, or a branch writable.")
@click.argument("ref", shell_complete=complete_ref)
@click.argument("mountpoint")
@click.option("--rw", is_flag=True,
              help="Writable: REF is REPO:BRANCH (REPO alone: main); 'datamonfs commit' makes "
                   "the staged changes a bundle on that branch.")
@click.option("--new", is_flag=True, help="With --rw: start from an empty tree; REF is REPO and "
                                          "--branch names the branch to create.")
@json_option
@click.option("--branch", default=None, metavar="NAME", help="With --rw --new: the new branch.")
@click.option("--uid", type=click.IntRange(0, 2**32 - 2), default=None, metavar="UID",
              help="Show the bundle's files as owned by this uid (default: yours; only root "
                   "may name another user).")
@click.option("--gid", type=click.IntRange(0, 2**32 - 2), default=None, metavar="GID",
              help="And this group (default: yours; one of your groups unless you are root).")
@socket_option
def mount(ref: str, mountpoint: str, rw: bool, new: bool, as_json: bool, branch: str | None,
          uid: int | None, gid: int | None, socket_path: str | None) -> None:
    """Mount bundle REF (REPO:REF) read-only at MOUNTPOINT, an empty directory.

    The ref is resolved once, now: the mount shows that bundle until unmounted.
    Starts the daemon when none runs. The last line printed is the bundle id.

    With --rw the head of branch REPO:BRANCH is mounted writable: changes are staged
    (crash-safe) in the daemon's state directory until 'datamonfs commit' or 'datamonfs
    unmount' commits them. A writable mount left by a crash is resumed by mounting
    the same branch at the same mountpoint again.

    Bundles record no owners: their files show as owned by --uid/--gid. What is created
    in a writable mount belongs to whoever created it, while the mount lives.
    """
    if (new or branch) and not rw:
        raise click.UsageError("--new and --branch go with --rw")
    if new != bool(branch):
        raise click.UsageError("--new takes --branch NAME (an existing branch: mount REPO:BRANCH)")
    mp = normalize(mountpoint)
    store = load_config().store_spec().to_json()
    client, started = ensure_daemon(socket_path)
    if started:
        info(f"started the datamonfs daemon (pid {started}); log: {client.paths.log}")
    fields = {"rw": True, "new": new, "branch": branch} if rw else {}
    fields.update({k: v for k, v in (("uid", uid), ("gid", gid)) if v is not None})
    with client:
        reply = client.call("mount", timeout=300, ref=ref, mountpoint=mp, store=store, **fields)
    m = reply["mount"]
    if as_json:
        emit_json({**m, "already": bool(reply.get("already"))})
        return
    done = "already mounted" if reply.get("already") else "mounted"
    if rw:
        info(f"{done} {m['repo']}:{m['branch']} writable (bundle "
             f"{m['bundle'][:12] or 'none'}) at {mp}")
    else:
        info(f"{done} {ref} (bundle {m['bundle'][:12]}) at {mp}")
    if m["bundle"]:
        click.echo(m["bundle"])


@click.command("unmount", short_help="Unmount a mount (also a dead one).")
@click.argument("mountpoint")
@click.option("--discard", is_flag=True,
              help="Writable mounts: drop what is staged instead of committing it.")
@click.option("--lazy", is_flag=True,
              help="Detach now even when busy (the kernel's lazy unmount); a writable mount "
                   "commits first. Files programs still hold open fail (ENOTCONN) once its "
                   "worker has stopped.")
@socket_option
@json_option
def unmount(mountpoint: str, discard: bool, lazy: bool, socket_path: str | None,
            as_json: bool) -> None:
    """Unmount MOUNTPOINT. Also clears a mount left dead by a daemon that died.

    A busy mount (a program has a file open, or its working directory, below it) is
    refused before anything is committed; --lazy detaches it anyway. A writable mount
    commits what it has staged first (config commit_on_unmount = true, the default; with
    false, unmount refuses while changes are staged), unless --discard drops them. The
    commit's bundle id is then the last line printed.
    """
    mp = normalize(mountpoint)
    cfg = load_config()
    client = Client(socket_path)
    try:
        client.connect()
    except DaemonUnavailable as e:
        kept = offline.record(client.paths, mp)
        if kept is not None and kept.mode == "rw" and not discard:
            client = writable._client(socket_path)  # committing needs a daemon
        else:
            _clear_offline(client, mp, e)
            return
    fields: dict = {"discard": True} if discard else {"commit": cfg.commit_on_unmount}
    if not discard:
        fields["store"] = cfg.store_spec().to_json()
        if cfg.name and cfg.email:
            fields["author"] = {"name": cfg.name, "email": cfg.email}
    with client, writable.commit_progress() as progress:
        r = client.call("unmount", timeout=COMMIT_TIMEOUT, mountpoint=mp, force=lazy,
                        on_progress=progress, **fields)
    if as_json:
        emit_json({"mountpoint": mp, "commit": r.get("commit"), "discarded": discard})
        return
    if r.get("commit"):
        writable.report_commit(r["commit"], mp)
    info(f"unmounted {mp}" + (" (staged changes discarded)" if discard else "")
         + (" lazily" if lazy else ""))


def _clear_offline(client: Client, mp: str, e: DaemonUnavailable) -> None:
    try:
        offline.clear(client.paths, mp)
    except offline.DaemonBusy:
        raise DaemonUnavailable(f"the datamonfs daemon on {client.paths.socket} does not "
                                "answer") from None
    except DatamonError as missing:
        raise type(e)(f"{missing}") from None
    info(f"cleared the dead mount at {mp}")


@click.command("mounts", short_help="List mounts and their state.")
@socket_option
@json_option
def mounts(socket_path: str | None, as_json: bool) -> None:
    """List mounts: mountpoint, ref, bundle, state (stale when its worker or daemon died)."""
    client = Client(socket_path)
    try:
        with client:
            records = client.call("list")["mounts"]
    except DaemonUnavailable:
        records = [r.to_json() for r in offline.stale_mounts(client.paths)]
    if as_json:
        emit_json(records)
        return
    for r in records:
        since = iso_time(int(r["since"] * 1e9))
        state = r["state"] + (f" ({r['reason']})" if r.get("reason") else "")
        ref = r["ref"] + (" (rw)" if r.get("mode") == "rw" else "")
        click.echo(f"{r['mountpoint']}\t{ref}\t{r['bundle']}\t{state}\t{since}")
