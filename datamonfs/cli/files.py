"""datamonfs cat REF PATH: one file of a bundle on stdout."""

from __future__ import annotations

import sys

import click

from ..cache import CachedChunkReader, FileReader, open_cache
from ..core.chunks import MiB
from ..core.model import DIR, LINK
from ..errors import DatamonError, NotFound
from .common import load_config, open_repository
from .completion import complete_ref


@click.command("cat", short_help="Print a file of a bundle.")
@click.argument("ref", shell_complete=complete_ref)
@click.argument("path")
def cat(ref: str, path: str) -> None:
    """Write the file PATH of bundle REF (REPO:REF) to stdout, every chunk verified."""
    cfg = load_config()
    repository = open_repository(cfg)
    b = repository.resolve(ref)
    entry = repository.lookup(b, path)
    if entry is None:
        raise NotFound(f"no file {path!r} in bundle {b.id[:12]} of {b.repo!r}; see "
                       f"'datamonfs bundle files {ref}'")
    if entry.kind == DIR:
        raise DatamonError(f"{path} is a directory; see 'datamonfs bundle files {ref} "
                           f"--filter {path.strip('/')}/**'")
    if entry.kind == LINK:
        raise DatamonError(f"{path} is a symlink to {entry.target!r}; cat that path")
    reader = CachedChunkReader(open_cache(cfg)[0], repository.chunks)
    out = sys.stdout.buffer
    try:
        # A sequential read: the file reader fetches runs of neighbouring chunks ahead.
        file = FileReader(reader, repository.trees.chunks(entry))
        for offset in range(0, file.size, 4 * MiB):
            out.write(file.read(offset, 4 * MiB))
        out.flush()
    except BrokenPipeError:  # `datamonfs cat ... | head`
        sys.stderr.close()
    finally:
        reader.close()
