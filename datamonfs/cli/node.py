"""datamonfs node-labels: node labels a scheduler can use, from what the cache holds.

    $ kubectl label node "$NODE" --overwrite $(datamonfs node-labels)

prints `datamonfs.io/cached.REPO.LABEL=true` for every label naming a bundle of which
the node's block cache holds at least --threshold of the bytes (the bundles the daemon
served lately, and those REF arguments name). A pod's nodeAffinity can then prefer the
nodes that hold its input (docs/KUBERNETES.md). `locality` is shared with `cache status`.
"""

from __future__ import annotations

import re

import blake3
import click

from ..cache import open_cache
from ..cache.locality import report
from ..daemon.client import Client, DaemonUnavailable
from .common import emit_json, json_option, load_config, open_repository, socket_option

PREFIX = "datamonfs.io/"
_LABEL_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")


def locality(refs: tuple[str, ...], socket_path: str | None) -> dict:
    """How much of each bundle the cache holds: the daemon's answer (the bundles it served
    lately and REFS), or, with no daemon running, this process's for REFS."""
    cfg = load_config()
    try:
        with Client(socket_path) as client:
            return client.call("locality", timeout=600, refs=list(refs),
                               store=cfg.store_spec().to_json())
    except DaemonUnavailable:
        pass
    blocks = open_cache(cfg)[0]
    if not refs:  # nothing to look up: the store need not even exist
        return {"bundles": [], "cache": blocks.stats()}
    repo = open_repository(cfg)
    rows = report(repo, blocks, [repo.resolve(ref) for ref in refs])
    return {"bundles": rows, "cache": blocks.stats()}


def label_key(repo: str, label: str) -> str:
    """The node label for a repo's label: `datamonfs.io/cached.REPO.LABEL`, or, when that is
    not a valid label name (over 63 characters, or ending in '.', '_', '-'), its first
    characters and a hash of REPO:LABEL, so two labels never share a key."""
    name = f"cached.{repo}.{label}"
    if _LABEL_NAME.fullmatch(name):
        return PREFIX + name
    digest = blake3.blake3(f"{repo}:{label}".encode()).hexdigest()[:10]
    head = name[:52].rstrip("._-")
    return f"{PREFIX}{head}-{digest}"


@click.command("node-labels", short_help="Node labels saying which bundles the cache holds.")
@click.argument("refs", nargs=-1, metavar="[REF]...")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.9, show_default=True,
              help="Label a bundle when the cache holds at least this share of its bytes.")
@socket_option
@json_option
def node_labels(refs: tuple[str, ...], threshold: float, socket_path: str | None,
                as_json: bool) -> None:
    """Print KEY=true for each label naming a bundle mostly in this node's cache."""
    rows = locality(refs, socket_path)["bundles"]
    keys = sorted({label_key(r["repo"], name) for r in rows if r["fraction"] >= threshold
                   for name in r["labels"]})
    if as_json:
        emit_json({key: "true" for key in keys})
        return
    for key in keys:
        click.echo(f"{key}=true")
