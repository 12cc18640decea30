"""datamonfs bundle upload | list | get | files | download | diff"""

from __future__ import annotations

import click

from ..cache import CachedChunkReader, open_cache
from ..core import export, ingest
from ..core.diff import diff_bundles
from ..core.model import DIR, Bundle
from .common import (emit_json, human_size, info, iso_time, json_option, load_config,
                     open_repository, progress_bar)


def bundle_json(b: Bundle) -> dict:
    return {"id": b.id, "repo": b.repo, "time": iso_time(b.time), "author": b.author_name,
            "email": b.author_email, "message": b.message, "files": b.files, "bytes": b.bytes,
            "parents": list(b.parents), "tree": b.tree}


@click.group()
def bundle() -> None:
    """Upload, list, inspect and download bundles (immutable snapshots)."""


@bundle.command("upload")
@click.argument("repo")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("-m", "--message", required=True, help="What this version is.")
@click.option("--label", default=None, help="Also point this label at the new bundle.")
@click.option("--branch", default="main", show_default=True, help="Branch whose head moves.")
def upload(repo: str, directory: str, message: str, label: str | None, branch: str) -> None:
    """Upload DIRECTORY as a new bundle of REPO. The last line printed is its id."""
    cfg = load_config()
    repository = open_repository(cfg)
    total = ingest.scan_size(directory) if _tty() else 0
    with progress_bar(total, "uploading") as progress:
        b, stats = ingest.upload(repository, repo, directory, message, cfg.author,
                                 branch=branch, label=label, progress=progress)
    info(f"{stats.files} files, {human_size(stats.bytes)}; {stats.chunks_uploaded} of "
         f"{stats.chunks} chunks uploaded ({human_size(stats.bytes_uploaded)} in "
         f"{stats.packs} pack{'s' if stats.packs != 1 else ''})")
    click.echo(b.id)


def _tty() -> bool:
    import sys

    return sys.stderr.isatty()


@bundle.command("list")
@click.argument("repo")
@click.option("--branch", default=None, help="Only bundles this branch has pointed at.")
@json_option
def list_(repo: str, branch: str | None, as_json: bool) -> None:
    """List the bundles of REPO, newest first."""
    bundles = open_repository().list_bundles(repo, branch)
    if as_json:
        emit_json([bundle_json(b) for b in bundles])
        return
    for b in bundles:
        click.echo(f"{b.id}\t{iso_time(b.time)}\t{b.author_name}\t{b.files} files\t"
                   f"{human_size(b.bytes)}\t{b.message}")


@bundle.command("get")
@click.argument("ref")
@json_option
def get(ref: str, as_json: bool) -> None:
    """Show the bundle REF (REPO:REF) names."""
    b = open_repository().resolve(ref)
    if as_json:
        emit_json(bundle_json(b))
        return
    for key, value in bundle_json(b).items():
        click.echo(f"{key}: {value}")


@bundle.command("files")
@click.argument("ref")
@click.option("--prefix", default="", help="Only paths starting with this.")
@json_option
def files(ref: str, prefix: str, as_json: bool) -> None:
    """List the files of a bundle."""
    repository = open_repository()
    b = repository.resolve(ref)
    rows = []
    for path, entry in repository.walk(b):
        if entry.kind == DIR or not path.startswith(prefix):
            continue
        row = {"path": path, "kind": entry.kind, "size": entry.size, "mode": oct(entry.mode),
               "mtime": iso_time(entry.mtime)}
        if entry.target is not None:
            row["target"] = entry.target
        if as_json:
            rows.append(row)
        else:
            click.echo(f"{path}\t{entry.size}\t{row['mtime']}")
    if as_json:
        emit_json(rows)


@bundle.command("download")
@click.argument("ref")
@click.argument("dest", type=click.Path(file_okay=False))
@click.option("--name-filter", default=None, metavar="GLOB",
              help="Only paths matching this glob ('*' also matches '/').")
@click.option("--force", is_flag=True, help="Write into a non-empty DEST, replacing files.")
@click.option("--no-cache", is_flag=True,
              help="Read chunks straight from the store, leaving the block cache as it is "
                   "(for a one-off download bigger than the cache).")
def download(ref: str, dest: str, name_filter: str | None, force: bool, no_cache: bool) -> None:
    """Download a bundle into DEST, verifying every chunk."""
    cfg = load_config()
    repository = open_repository(cfg)
    b = repository.resolve(ref)
    reader = CachedChunkReader(None if no_cache else open_cache(cfg)[0], repository.chunks)
    try:
        with progress_bar(b.bytes, "downloading") as progress:
            stats = export.download(repository, b, dest, reader=reader, name_filter=name_filter,
                                    force=force, progress=progress)
    finally:
        reader.close()
    info(f"{stats.files} files, {human_size(stats.bytes)} written to {dest}")


@bundle.command("diff")
@click.argument("old")
@click.argument("new")
@json_option
def diff(old: str, new: str, as_json: bool) -> None:
    """What changed from bundle OLD to bundle NEW."""
    repository = open_repository()
    a, b = repository.resolve(old), repository.resolve(new)
    changes = diff_bundles(repository, a, b)
    if as_json:
        emit_json([c.to_json() for c in changes])
        return
    for c in changes:
        sizes = {"added": f"{c.new_size}", "removed": f"{c.old_size}",
                 "modified": f"{c.old_size} -> {c.new_size}"}[c.change]
        click.echo(f"{c.change}\t{c.path}\t{sizes}")
