#!/usr/bin/env python3
"""Write the command reference of docs/CLI.md from the click commands themselves.

    python scripts/cli_reference.py            # rewrite docs/CLI.md between the markers
    python scripts/cli_reference.py --check    # exit 1 when docs/CLI.md is out of date

Everything outside the markers (conventions, exit codes, refs, filters) is written by
hand; the environment variables come from datamonfs/cli/environment.py.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import click  # noqa: E402

from datamonfs.cli.environment import ENVIRONMENT  # noqa: E402
from datamonfs.cli.main import cli  # noqa: E402

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "CLI.md")
BEGIN, END = "<!-- BEGIN GENERATED: scripts/cli_reference.py -->", "<!-- END GENERATED -->"


def _commands(group: click.Group, path: list[str]):
    ctx = click.Context(group, info_name=" ".join(path))
    for name in sorted(group.list_commands(ctx)):
        cmd = group.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, path + [name])
        else:
            yield path + [name], cmd


def _usage(path: list[str], cmd: click.Command) -> str:
    ctx = click.Context(cmd, info_name=" ".join(path))
    return " ".join(cmd.collect_usage_pieces(ctx))


def reference() -> str:
    out = [BEGIN, "", "## Environment variables", "", "| variable | meaning |", "|---|---|"]
    out += [f"| `{name}` | {what} |" for name, what in ENVIRONMENT]
    out += ["", "## Commands", ""]
    for path, cmd in [(["datamonfs"], cli), *_commands(cli, ["datamonfs"])]:
        out += [f"### `{' '.join(path[1:]) or 'datamonfs'}`", "", "```",
                f"{' '.join(path)} {_usage(path, cmd)}".rstrip(), "```", ""]
        help_text = (cmd.help or "").replace("\b\n", "").strip()
        if isinstance(cmd, click.Group):  # the top level: its options only
            help_text = "Options every command takes go before the command's name."
        out += [" ".join(p.split()) for p in help_text.split("\n\n")]
        out += [""]
        rows = []
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden:
                names = ", ".join(f"`{o}`" for o in p.opts + p.secondary_opts)
                meta = "" if p.is_flag else f" {p.metavar or p.make_metavar(click.Context(cmd))}"
                rows.append(f"| {names}{meta} | {' '.join((p.help or '').split())} |")
        if rows:
            out += ["| option | meaning |", "|---|---|", *rows, ""]
    out.append(END)
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END + "\n")
    new = head + reference() + tail
    if args.check:
        sys.exit(0 if new == text else 1)
    with open(DOC, "w", encoding="utf-8") as f:
        f.write(new)


if __name__ == "__main__":
    main()
