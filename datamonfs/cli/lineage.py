"""datamonfs lineage REF: what a bundle was made from and what was made from it."""

from __future__ import annotations

import click

from .common import emit_json, json_option, open_api
from .completion import complete_ref


@click.command("lineage", short_help="Show what a bundle was made from and what was made from it.")
@click.argument("ref", shell_complete=complete_ref)
@click.option("--up", "direction", flag_value="up", help="Only what REF was made from.")
@click.option("--down", "direction", flag_value="down", help="Only what was made from REF.")
@click.option("--depth", type=click.IntRange(min=1), default=None, metavar="N",
              help="At most N generations each way (default: all).")
@click.option("--dot", "as_dot", is_flag=True, help="Print a Graphviz graph (dot -Tsvg).")
@json_option
def lineage(ref: str, direction: str | None, depth: int | None, as_dot: bool,
            as_json: bool) -> None:
    """Show the lineage of bundle REF (REPO:REF) across the repos of the store: the bundles
    it was made from (their `inputs`, recorded by `run`, `upload --input`, `commit --input`
    and the Python API), theirs in turn, and the bundles made from it. Text shows one
    bundle a line, indented by generation; --json gives `start`, `bundles`, `edges`
    (input, output), `missing` and `truncated`."""
    if as_dot and as_json:
        raise click.UsageError("--dot and --json are two formats; give one")
    graph = open_api().lineage(ref, up=direction != "down", down=direction != "up",
                               depth=depth)
    if as_json:
        emit_json(graph.to_json())
    elif as_dot:
        click.echo(graph.to_dot(), nl=False)
    else:
        click.echo(graph.to_text(), nl=False)
