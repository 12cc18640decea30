"""datamonfs cat REF PATH: one file of a bundle on stdout."""

from __future__ import annotations

import shutil
import sys

import click

from ..core.model import DIR, LINK
from ..errors import DatamonError, NotFound, PathNotFound
from .common import open_api
from .completion import complete_ref

PIECE = 1 << 20  # bytes written at a time


@click.command("cat", short_help="Print a file of a bundle.")
@click.argument("ref", shell_complete=complete_ref)
@click.argument("path")
def cat(ref: str, path: str) -> None:
    """Write the file PATH of bundle REF (REPO:REF) to stdout, every chunk verified."""
    b = open_api().bundle(ref)
    try:
        info = b.stat(path)
    except PathNotFound:
        raise NotFound(f"no file {path!r} in bundle {b.id[:12]} of {b.repo!r}; see "
                       f"'datamonfs bundle files {ref}'") from None
    if info.kind == DIR:
        raise DatamonError(f"{path} is a directory; see 'datamonfs bundle files {ref} "
                           f"--filter {path.strip('/')}/**'")
    if info.kind == LINK:
        raise DatamonError(f"{path} is a symlink to {info.target!r}; cat that path")
    out = sys.stdout.buffer
    try:
        with b.open(path) as f:
            shutil.copyfileobj(f, out, PIECE)
        out.flush()
    except BrokenPipeError:  # `datamonfs cat ... | head`
        sys.stderr.close()
