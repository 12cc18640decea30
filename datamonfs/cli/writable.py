"""datamonfs commit, status: the staged changes of writable mounts (`mount --rw`)."""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Callable, Iterator

import click

from ..daemon.client import ensure_daemon
from ..daemon.limits import COMMIT_TIMEOUT, STATUS_LIMIT
from ..daemon.mountpoints import normalize
from .common import (emit_json, human_size, info, json_option, load_config, open_api,
                     progress_bar, short, socket_option)


def _client(socket_path: str | None):
    # A writable mount left by a daemon that died is resumed by the next one: start it.
    client, started = ensure_daemon(socket_path)
    if started:
        info(f"started the datamonfs daemon (pid {started}); log: {client.paths.log}")
    return client


@contextmanager
def commit_progress() -> Iterator[Callable[[dict], None]]:
    """A callback for the daemon's progress lines of a commit (docs/PROTOCOL.md), drawing a
    progress bar from the first line on: an unmount that commits nothing shows none."""
    with ExitStack() as stack:
        state: dict = {"advance": None, "done": 0}

        def on_progress(p: dict) -> None:
            done, total = p.get("done"), p.get("total")
            if not isinstance(done, int) or done < state["done"]:
                return
            if state["advance"] is None:
                state["advance"] = stack.enter_context(progress_bar(None, "committing")) or (
                    lambda n: None)
            bar = getattr(state["advance"], "__self__", None)  # the tqdm bar on a terminal
            if bar is not None and isinstance(total, int) and total >= done:
                bar.total = total
            state["advance"](done - state["done"])
            state["done"] = done

        yield on_progress


def report_commit(r: dict, mp: str) -> None:
    """What a commit did, on stderr; its bundle id (or the unchanged one) on stdout."""
    where = f"{r.get('repo', '')}:{r['branch']}"
    if r["bundle"] is None:
        info(f"nothing to commit: {mp} shows {where} (bundle {short(r['parent'])}) unchanged")
        if r["parent"]:
            click.echo(r["parent"])
        return
    s = r["stats"]
    info(f"committed bundle {short(r['bundle'])} on {where}: {s['chunks_uploaded']} chunk(s) "
         f"uploaded ({human_size(s['bytes_uploaded'])}), {s['chunks_reused']} reused")
    if r["forked"]:
        info(f"note: branch {r['branch']} had moved to {short(r['head_before'])} since this "
             f"mount's bundle {short(r['parent'])}; the head is now {short(r['bundle'])} and "
             f"'datamonfs branch log {where}' keeps both")
    click.echo(r["bundle"])


@click.command("commit", short_help="Commit a writable mount's staged changes as a bundle.")
@click.argument("mountpoint")
@click.option("-m", "--message", required=True, help="The bundle's message.")
@click.option("--label", default=None, metavar="NAME", help="Also set this label to the bundle.")
@click.option("--input", "inputs", multiple=True, metavar="REF",
              help="Record that the bundle was made from bundle REF (REPO:REF, any repo of the "
                   "store; repeatable): `datamonfs lineage` shows it.")
@socket_option
@json_option
def commit(mountpoint: str, message: str, label: str | None, inputs: tuple[str, ...],
           socket_path: str | None, as_json: bool) -> None:
    """Turn what MOUNTPOINT (a `mount --rw`) has staged into a new bundle on its branch,
    whose parent is the bundle it shows; the mount then shows the new bundle.

    Only what changed is chunked and uploaded. With nothing staged no bundle is made
    (exit 0). The last line printed is the bundle id (the unchanged one when nothing
    was staged). When the branch moved since the mount's bundle (another writable
    mount committed), a note says so: both bundles stay in the branch log.
    """
    mp = normalize(mountpoint)
    cfg = load_config()
    author = cfg.author
    made_from = [i.to_obj() for i in open_api(cfg).inputs(inputs)] if inputs else []
    with _client(socket_path) as client, commit_progress() as progress:
        r = client.call("commit", timeout=COMMIT_TIMEOUT, mountpoint=mp, message=message,
                        label=label, author={"name": author.name, "email": author.email},
                        store=cfg.store_spec().to_json(), on_progress=progress,
                        **({"inputs": made_from} if made_from else {}))
    if as_json:
        r.pop("id", None)
        r.pop("ok", None)
        emit_json(r)
        return
    report_commit(r, mp)


@click.command("status", short_help="List the staged changes of a writable mount.")
@click.argument("mountpoint")
@click.option("--limit", default=STATUS_LIMIT, show_default=True, metavar="N",
              help="List at most N changes (the counts cover them all).")
@socket_option
@json_option
def status(mountpoint: str, limit: int, socket_path: str | None, as_json: bool) -> None:
    """List what MOUNTPOINT (a `mount --rw`) has staged since its bundle: paths added,
    modified or deleted. A directory added or deleted whole is one line ending in "/"
    (plus, when added, what was put in it); a moved entry is deleted at its old path
    and added at its new one. With --json: one object with `changes`, `counts`,
    `total`, `truncated`, `repo`, `branch` and `bundle`."""
    mp = normalize(mountpoint)
    with _client(socket_path) as client:
        r = client.call("status", mountpoint=mp, limit=limit)
    r.pop("id", None)
    r.pop("ok", None)
    if as_json:
        emit_json(r)
        return
    for c in r["changes"]:
        click.echo(f"{c['change']:<9} {c['path']}")
    n = r["counts"]
    more = f" ({r['total'] - len(r['changes'])} not listed)" if r["truncated"] else ""
    info(f"{n['added']} added, {n['modified']} modified, {n['deleted']} deleted on "
         f"{r['repo']}:{r['branch']} (bundle {short(r['bundle'])}){more}")
