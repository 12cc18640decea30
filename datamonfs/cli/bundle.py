"""datamonfs bundle upload | list | get | files | download | diff"""

from __future__ import annotations

import shlex

import click

from ..core import ingest
from .common import (emit_json, human_size, info, iso_time, json_option, mode_text,
                     open_api, parse_when, progress_bar, short)
from .completion import complete_ref, complete_repo

input_option = click.option(
    "--input", "inputs", multiple=True, metavar="REF",
    help="Record that the bundle was made from bundle REF (REPO:REF, any repo of the store; "
         "repeatable): `datamonfs lineage` shows it.")

filter_option = click.option(
    "--filter", "pattern", default=None, metavar="GLOB",
    help="Only paths matching GLOB: '*' within a name, '**' any depth; without '/' it "
         "matches a name at any depth; a directory matches what is below it.")


def _as_text(key: str, value) -> str:
    """`bundle get` without --json: provenance as people read it."""
    if key == "inputs":
        return ", ".join(f"{i['repo']}:{i['bundle']}" for i in value)
    if key == "process":
        extra = "".join(f"; {k.replace('_', ' ')}: {value[k]!r}"
                        for k in ("notebook", "code_version", "description") if k in value)
        return shlex.join(value["command"]) + (f"  (on {value['host']})" if "host" in value
                                               else "") + extra
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
@input_option
@json_option
def upload(repo: str, directory: str, message: str, label: str | None, branch: str,
           allow_empty: bool, inputs: tuple[str, ...], as_json: bool) -> None:
    """Upload DIRECTORY as a new bundle of REPO. The last line printed is its id.

    When DIRECTORY equals the head of the branch no bundle is made (as a commit with
    nothing staged): the head's id is printed, and --label is set to it.
    """
    store = open_api(write=True)
    made_from = store.inputs(inputs)
    with progress_bar(_folder_size(directory), "uploading") as progress:
        done = store.repo(repo).upload(directory, message, branch, label, made_from,
                                       allow_empty=allow_empty, progress=progress)
    b, stats = done.bundle, done.stats
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


@bundle.command("list")
@click.argument("repo", shell_complete=complete_repo)
@click.option("--branch", default=None, help="Only bundles this branch has pointed at.")
@click.option("--label", default=None, help="Only bundles this label has pointed at.")
@click.option("--author", default=None, metavar="TEXT",
              help="Only bundles whose author (NAME <EMAIL>) holds TEXT, ignoring case.")
@click.option("--since", default=None, metavar="TIME",
              help="Only bundles made at TIME or later: 2024-05-01, 2024-05-01T12:00:00+02:00 "
                   "(no zone: UTC), or how long ago (3d, 12h, 2w).")
@click.option("--until", default=None, metavar="TIME", help="Only bundles made at TIME or before.")
@click.option("--grep", default=None, metavar="TEXT",
              help="Only bundles whose message holds TEXT, ignoring case (plain text).")
@click.option("-n", "--max-count", "limit", type=click.IntRange(min=0), default=None,
              metavar="N", help="Only the N newest.")
@json_option
def list_(repo: str, branch: str | None, label: str | None, author: str | None,
          since: str | None, until: str | None, grep: str | None, limit: int | None,
          as_json: bool) -> None:
    """List the bundles of REPO, newest first, with the branches and labels naming them;
    the filters combine (every one given must match)."""
    r = open_api().repo(repo)
    bundles = r.bundles(branch=branch, label=label, author=author,
                        since=parse_when(since) if since else None,
                        until=parse_when(until) if until else None, grep=grep, limit=limit)
    names = r.decorations()
    none = {"branches": [], "labels": []}
    if as_json:
        emit_json([{**b.to_json(), **names.get(b.id, none)} for b in bundles])
        return
    for b in bundles:
        refs = names.get(b.id, none)["branches"] + names.get(b.id, none)["labels"]
        shown = f" ({', '.join(refs)})" if refs else ""
        click.echo(f"{b.id}\t{iso_time(b.time_ns)}\t{b.author}\t{b.files} files\t"
                   f"{human_size(b.bytes)}\t{b.message}{shown}")


@bundle.command("get")
@click.argument("ref", shell_complete=complete_ref)
@json_option
def get(ref: str, as_json: bool) -> None:
    """Show the bundle REF (REPO:REF) names."""
    b = open_api().bundle(ref)
    if as_json:
        emit_json(b.to_json())
        return
    for key, value in b.to_json().items():
        click.echo(f"{key}: {_as_text(key, value)}")


@bundle.command("files")
@click.argument("ref", shell_complete=complete_ref)
@filter_option
@json_option
def files(ref: str, pattern: str | None, as_json: bool) -> None:
    """List the files of a bundle: path, size in bytes, mode, time."""
    rows = []
    for f in open_api().bundle(ref).walk(pattern=pattern):
        row = {"path": f.path, "kind": f.kind, "size": f.size, "mode": mode_text(f.mode),
               "mtime": iso_time(f.mtime_ns)}
        if f.target is not None:
            row["target"] = f.target
        if as_json:
            rows.append(row)
        else:
            click.echo(f"{f.path}\t{f.size}\t{row['mode']}\t{row['mtime']}")
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
    b = open_api().bundle(ref)
    with progress_bar(b.bytes, "downloading") as progress:
        stats = b.download(dest, pattern, resume, delete, progress, cache=not no_cache)
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
    store = open_api()
    a, b = store.bundle(old), store.bundle(new)
    counts = {"added": 0, "modified": 0, "deleted": 0}
    rows = []
    for c in a.diff(b):  # streamed: a diff may list millions of paths
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
