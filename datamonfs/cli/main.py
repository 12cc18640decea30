"""The `datamonfs` command.

Exit status: 0 success; 1 user error (bad name, unknown ref, refused overwrite, a
path that is not what the command needs); 2 usage error (a missing argument, an
unknown option); 3 store or daemon unreachable; 4 integrity failure (corrupt or
hostile data). Every error is one line on stderr: `datamonfs: error: ...`.
"""

from __future__ import annotations

import sys

import click

from .. import __version__
from ..errors import DatamonError
from . import (bundle, cache, common, config, daemon, environment, files, node, pod, refs, repo,
               run, wait)

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


for command in (config.config, repo.repo, bundle.bundle, refs.label, refs.branch, cache.cache,
                files.cat, *daemon.commands, run.run, wait.wait, pod.pod, node.node_labels):
    cli.add_command(command)


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
