"""The `datamonfs` command.

Exit status: 0 success; 1 user error (bad name, unknown ref, refused overwrite, a
path that is not what the command needs); 2 usage error (a missing argument, an
unknown option); 3 store or daemon unreachable; 4 integrity failure (corrupt or
hostile data). Every error is one line on stderr: `datamonfs: error: ...`.
"""

from __future__ import annotations

import importlib
import sys

import click

from .. import __version__
from ..errors import DatamonError
from . import common, environment

# Each command and the module defining it, imported only when the command runs (or --help
# and completion list them): a command's start-up then pays for its own imports only, not
# for the daemon's, the mounts' and the server's (trio, the overlay, ...): a third of a
# second of every short command.
COMMANDS = {
    "config": "config:config", "repo": "repo:repo", "bundle": "bundle:bundle",
    "label": "refs:label", "branch": "refs:branch", "cache": "cache:cache",
    "cat": "files:cat", "daemon": "daemon:daemon", "mount": "daemon:mount",
    "unmount": "daemon:unmount", "mounts": "daemon:mounts", "commit": "writable:commit",
    "status": "writable:status", "run": "run:run", "wait": "wait:wait", "pod": "pod:pod",
    "node-labels": "node:node_labels", "lineage": "lineage:lineage", "log": "history:log",
    "serve": "serve:serve", "token": "serve:token",
}

EXIT_CODES = """\b
Exit status:
  0  success
  1  user error (bad name, unknown ref, refused overwrite, wrong path)
  2  usage error (missing argument, unknown option)
  3  store or daemon cannot be reached
  4  integrity failure (corrupt or hostile data)"""

COMPLETION = """\b
Shell completion (repos and refs too), e.g. in ~/.bashrc:
  eval "$(_DATAMONFS_COMPLETE=bash_source datamonfs)"
  (zsh: zsh_source, fish: fish_source)"""


class Main(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(f".{module}", __package__), attr)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DatamonError as e:
            fail(str(e), e.exit_code)
        except KeyboardInterrupt:
            click.echo("datamonfs: interrupted", err=True)
            sys.exit(130)


def fail(message: str, code: int) -> None:
    click.echo(f"datamonfs: error: {' '.join(message.split())}", err=True)
    sys.exit(code)


@click.group(cls=Main, epilog="\n\n".join([EXIT_CODES, environment.help_text(), COMPLETION]),
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="datamonfs")
@click.option("-q", "--quiet", is_flag=True, help="No notes or progress on stderr (errors only).")
def cli(quiet: bool) -> None:
    """Versioned datasets in an object store, mounted lazily.

    Refs are REPO:REF, where REF is tried as a label, then a branch, then a
    bundle id or a unique prefix of one (at least 4 hex digits); REPO alone
    means the head of branch main, and REF~N the Nth first-parent ancestor.
    A label and a branch of one repo never share a name. docs/CLI.md lists
    every command.
    """
    common.set_quiet(quiet)


def main() -> None:
    try:
        code = cli.main(prog_name="datamonfs", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as e:
        click.echo(e.ctx.get_help() if e.ctx else "", err=True)
        sys.exit(2)
    except click.UsageError as e:
        # One line, as every other error; the command's --help has the rest.
        where = e.ctx.command_path if e.ctx else "datamonfs"
        fail(f"{e.format_message()} (see '{where} --help')", 2)
    except click.ClickException as e:
        fail(e.format_message(), e.exit_code)
    except click.exceptions.Abort:
        click.echo("datamonfs: interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
