"""The `datamonfs` command.

Exit status: 0 success; 1 user error (bad name, unknown ref, refused overwrite);
2 usage error; 3 store or daemon unreachable; 4 integrity failure (corrupt or
hostile data). Errors are printed to stderr as one line.
"""

from __future__ import annotations

import sys

import click

from .. import __version__
from ..errors import DatamonError
from . import bundle, cache, config, daemon, node, pod, refs, repo, run, wait

EXIT_CODES = """\b
Exit status:
  0  success
  1  user error (bad name, unknown ref, refused overwrite)
  2  usage error
  3  store or daemon cannot be reached
  4  integrity failure (corrupt or hostile data)"""


class Main(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DatamonError as e:
            click.echo(f"datamonfs: error: {_one_line(str(e))}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("datamonfs: interrupted", err=True)
            sys.exit(130)


def _one_line(text: str) -> str:
    return " ".join(text.split())


@click.group(cls=Main, epilog=EXIT_CODES, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="datamonfs")
def cli() -> None:
    """Versioned datasets in an object store, mounted lazily.

    Refs are REPO:REF, where REF is tried as a label, then a branch, then a
    bundle id or a unique prefix of one (at least 4 hex digits). REPO alone
    means the head of branch main.
    """


for command in (config.config, repo.repo, bundle.bundle, refs.label, refs.branch, cache.cache,
                *daemon.commands, run.run, wait.wait, pod.pod, node.node_labels):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="datamonfs")
