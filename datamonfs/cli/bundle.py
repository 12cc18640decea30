"""datamonfs bundle upload | list | get | files | download | diff"""

from __future__ import annotations

import shlex

import click

from ..cache import CachedChunkReader, open_cache
from ..core import export, ingest
from ..core.diff import diff_bundles
from ..core.globs import matcher
from ..core.model import DIR, Bundle
from ..core.repository import BRANCH, LABEL, Repository
from .common import (emit_json, human_size, info, iso_time, json_option, load_config, mode_text,
                     open_repository, progress_bar, short)
from .completion import complete_ref, complete_repo

filter_option = click.option(
    "--filter", "pattern", default=None, metavar="GLOB",
    help="Only paths matching GLOB: '*' within a name, '**' any depth; without '/' it "
         "matches a name at any depth; a directory matches what is below it.")


def bundle_json(b: Bundle) -> dict:
    """A bundle as `get --json` and listings print it; `inputs` and `process` (what it
    was made from) only when the bundle records them."""
    return {"id": b.id, "repo": b.repo, "time": iso_time(b.time), "author": b.author_name,
            "email": b.author_email, "message": b.message, "files": b.files, "bytes": b.bytes,
            "parents": list(b.parents), "tree": b.tree, **b.provenance.to_obj()}


def _as_text(key: str, value) -> str:
    """`bundle get` without --json: provenance as people read it."""
    if key == "inputs":
        return ", ".join(f"{i['repo']}:{i['bundle']}" for i in value)
    if key == "process":
        return shlex.join(value["command"]) + (f"  (on {value['host']})" if "host" in value else "")
    return " ".join(value) if isinstance(value, list) else str(value)


@click.group()
def bundle() -> None:
    """Upload, list, inspect and download bundles (immutable snapshots)."""


@bundle.command("upload")
@click.argument("repo", shell_complete=complete_repo)
@click.argument("directory")
@click.option("-m", "--message", required=True, help="What this version is.")
@click.option("--label", default=None, help="Also point this label at the bundle.")
@click.option("--branch", default="main", show_default=True, help="Branch whose head moves.")
@click.option("--allow-empty", is_flag=True,
              help="Make a bundle even when DIRECTORY equals the branch head.")
@json_option
def upload(repo: str, directory: str, message: str, label: str | None, branch: str,
           allow_empty: bool, as_json: bool) -> None:
    """Upload DIRECTORY as a new bundle of REPO. The last line printed is its id.

    When DIRECTORY equals the head of the branch no bundle is made (as a commit with
    nothing staged): the head's id is printed, and --label is set to it.
    """
    cfg = load_config()
    repository = open_repository(cfg, write=True)
    with progress_bar(_folder_size(directory), "uploading") as progress:
        b, stats = ingest.upload(repository, repo, directory, message, cfg.author,
                                 branch=branch, label=label, progress=progress,
                                 allow_empty=allow_empty)
    if as_json:
        emit_json({"bundle": b.id, "new_bundle": stats.new_bundle, "repo": repo,
                   "branch": branch, "label": label, "files": stats.files,
                   "bytes": stats.bytes, "chunks": stats.chunks,
                   "chunks_uploaded": stats.chunks_uploaded,
                   "bytes_uploaded": stats.bytes_uploaded, "packs": stats.packs})
        return
    if not stats.new_bundle:
        info(f"nothing new: {directory} equals the head of {repo}:{branch} (bundle "
             f"{short(b.id)}); no bundle made (--allow-empty makes one)")
    else:
        info(f"{stats.files} files, {human_size(stats.bytes)}; {stats.chunks_uploaded} of "
             f"{stats.chunks} chunks uploaded ({human_size(stats.bytes_uploaded)} in "
             f"{stats.packs} pack{'s' if stats.packs != 1 else ''})")
    click.echo(b.id)


def _folder_size(directory: str) -> int | None:
    import sys

    return ingest.scan_size(directory) if sys.stderr.isatty() else None


def decorations(repository: Repository, repo: str) -> dict[str, dict[str, list[str]]]:
    """Bundle id -> {"branches": [...], "labels": [...]} naming it now, as git's --decorate."""
    names: dict[str, dict[str, list[str]]] = {}
    for kind, key in ((BRANCH, "branches"), (LABEL, "labels")):
        for r in repository.list_refs(repo, kind):
            names.setdefault(r.bundle, {"branches": [], "labels": []})[key].append(r.name)
    return names


@bundle.command("list")
@click.argument("repo", shell_complete=complete_repo)
@click.option("--branch", default=None, help="Only bundles this branch has pointed at.")
@click.option("-n", "--max-count", "limit", type=click.IntRange(min=0), default=None,
              metavar="N", help="Only the N newest.")
@json_option
def list_(repo: str, branch: str | None, limit: int | None, as_json: bool) -> None:
    """List the bundles of REPO, newest first, with the branches and labels naming them."""
    repository = open_repository()
    bundles = repository.list_bundles(repo, branch)[:limit]
    names = decorations(repository, repo)
    none = {"branches": [], "labels": []}
    if as_json:
        emit_json([{**bundle_json(b), **names.get(b.id, none)} for b in bundles])
        return
    for b in bundles:
        refs = names.get(b.id, none)["branches"] + names.get(b.id, none)["labels"]
        shown = f" ({', '.join(refs)})" if refs else ""
        click.echo(f"{b.id}\t{iso_time(b.time)}\t{b.author_name}\t{b.files} files\t"
                   f"{human_size(b.bytes)}\t{b.message}{shown}")


@bundle.command("get")
@click.argument("ref", shell_complete=complete_ref)
@json_option
def get(ref: str, as_json: bool) -> None:
    """Show the bundle REF (REPO:REF) names."""
    b = open_repository().resolve(ref)
    if as_json:
        emit_json(bundle_json(b))
        return
    for key, value in bundle_json(b).items():
        click.echo(f"{key}: {_as_text(key, value)}")


@bundle.command("files")
@click.argument("ref", shell_complete=complete_ref)
@filter_option
@json_option
def files(ref: str, pattern: str | None, as_json: bool) -> None:
    """List the files of a bundle: path, size in bytes, mode, time."""
    repository = open_repository()
    b = repository.resolve(ref)
    wanted = matcher(pattern)
    rows = []
    for path, entry in repository.walk(b):
        if entry.kind == DIR or not wanted(path):
            continue
        row = {"path": path, "kind": entry.kind, "size": entry.size,
               "mode": mode_text(entry.mode), "mtime": iso_time(entry.mtime)}
        if entry.target is not None:
            row["target"] = entry.target
        if as_json:
            rows.append(row)
        else:
            click.echo(f"{path}\t{entry.size}\t{row['mode']}\t{row['mtime']}")
    if as_json:
        emit_json(rows)


@bundle.command("download")
@click.argument("ref", shell_complete=complete_ref)
@click.argument("dest")
@filter_option
@click.option("--resume", "--force", "resume", is_flag=True,
              help="Write into a non-empty DEST: files already complete there (every chunk "
                   "verified) are kept, the others written. Running an interrupted download "
                   "again does this by itself.")
@click.option("--delete", is_flag=True,
              help="Also remove what DEST holds that the bundle does not (as rclone sync).")
@click.option("--no-cache", is_flag=True,
              help="Read chunks straight from the store, leaving the block cache as it is "
                   "(for a one-off download bigger than the cache).")
def download(ref: str, dest: str, pattern: str | None, resume: bool, delete: bool,
             no_cache: bool) -> None:
    """Download a bundle into DEST, verifying every chunk. Extended attributes (user.*)
    are written when DEST's file system takes them; a warning counts those it refused."""
    cfg = load_config()
    repository = open_repository(cfg)
    b = repository.resolve(ref)
    reader = CachedChunkReader(None if no_cache else open_cache(cfg)[0], repository.chunks)
    try:
        with progress_bar(b.bytes, "downloading") as progress:
            stats = export.download(repository, b, dest, reader=reader, name_filter=pattern,
                                    resume=resume or delete, delete=delete, progress=progress)
    finally:
        reader.close()
    kept = f"; {stats.kept} already complete, kept" if stats.kept else ""
    gone = f"; {stats.deleted} not in the bundle, deleted" if stats.deleted else ""
    info(f"{stats.files} files, {human_size(stats.bytes)} written to {dest}{kept}{gone}")
    if stats.xattrs_skipped:
        info(f"warning: {stats.xattrs_skipped} extended attribute(s) not written: the file "
             f"system of {dest} does not take them (or not that large)")


@bundle.command("diff")
@click.argument("old", shell_complete=complete_ref)
@click.argument("new", shell_complete=complete_ref)
@click.option("--exit-code", is_flag=True, help="Exit 1 when the bundles differ (as git diff).")
@json_option
def diff(old: str, new: str, exit_code: bool, as_json: bool) -> None:
    """What changed from bundle OLD to bundle NEW: added, deleted, modified paths (a
    summary line follows on stderr)."""
    repository = open_repository()
    a, b = repository.resolve(old), repository.resolve(new)
    counts = {"added": 0, "modified": 0, "deleted": 0}
    rows = []
    for c in diff_bundles(repository, a, b):  # streamed: a diff may list millions of paths
        counts[c.change] += 1
        if as_json:
            rows.append(c.to_json())
        else:
            sizes = {"added": f"{c.new_size}", "deleted": f"{c.old_size}",
                     "modified": f"{c.old_size} -> {c.new_size}"}[c.change]
            click.echo(f"{c.change}\t{c.path}\t{sizes}")
    if as_json:
        emit_json(rows)
    info(f"{counts['added']} added, {counts['modified']} modified, {counts['deleted']} deleted")
    if exit_code and any(counts.values()):
        raise SystemExit(1)
