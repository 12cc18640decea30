"""datamonfs log REPO[:REF] PATH: the bundles in which one path changed."""

from __future__ import annotations

import click

from ..core.names import split_ref
from .common import emit_json, iso_time, json_option, open_api
from .completion import complete_ref


@click.command("log", short_help="Show the bundles in which a path changed.")
@click.argument("ref", metavar="REPO[:REF]", shell_complete=complete_ref)
@click.argument("path")
@click.option("-n", "--max-count", "limit", type=click.IntRange(min=0), default=None,
              metavar="N", help="Only the N newest changes.")
@json_option
def log(ref: str, path: str, limit: int | None, as_json: bool) -> None:
    """List the bundles, newest first along first parents from REF (default: the head of
    main), in which PATH was added, modified or deleted, as git log -- PATH does. Subtrees
    equal in a bundle and its parent are skipped by address, so it costs about one
    lookup per bundle. Each line: bundle id, time, change, size, author, message."""
    repo = split_ref(ref).repo
    rest = ref[len(repo):]  # "", ":REF", "~N" or ":REF~N"
    start = rest[1:] if rest.startswith(":") else "main" + rest
    changes = open_api().repo(repo).log(path, start, limit)
    if as_json:
        emit_json([c.to_json() for c in changes])
        return
    for c in changes:
        b = c.bundle
        size = "-" if c.info is None else str(c.info.size)
        click.echo(f"{b.id}\t{iso_time(b.time_ns)}\t{c.change}\t{size}\t{b.author}\t"
                   f"{b.message.splitlines()[0] if b.message else ''}")
