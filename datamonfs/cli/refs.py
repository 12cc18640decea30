"""datamonfs label set|get|list and branch create|list|log"""

from __future__ import annotations

import click

from ..core.model import RefRecord
from ..core.names import is_name, parse_branch_ref
from ..core.repository import BRANCH, LABEL
from ..errors import AlreadyExists, NotFound
from .common import emit_json, info, iso_time, json_option, load_config, open_repository, short
from .completion import complete_ref, complete_repo


def ref_json(r: RefRecord) -> dict:
    return {"repo": r.repo, "kind": r.kind, "name": r.name, "bundle": r.bundle,
            "time": iso_time(r.time), "author": r.author_name, "email": r.author_email}


def print_refs(records: list[RefRecord], as_json: bool, messages: dict[str, str] | None = None
               ) -> None:
    if as_json:
        emit_json([{**ref_json(r), **({"message": messages[r.bundle]} if messages else {})}
                   for r in records])
        return
    for r in records:
        tail = f"\t{messages[r.bundle]}" if messages else ""
        click.echo(f"{r.name}\t{r.bundle}\t{iso_time(r.time)}\t{r.author_name}{tail}")


def check_order(ref: str, name: str, command: str) -> None:
    """`label set prod sales:v1`: the arguments swapped (a usage error, exit 2)."""
    if ":" in name and ":" not in ref and is_name(ref):
        raise click.UsageError(f"the arguments are REF then NAME; did you mean "
                               f"'datamonfs {command} {name} {ref}'?")


@click.group()
def label() -> None:
    """Name bundles with labels (a label can move; its history is kept)."""


@label.command("set")
@click.argument("ref", shell_complete=complete_ref)
@click.argument("name")
def label_set(ref: str, name: str) -> None:
    """Point label NAME at the bundle REF (REPO:REF) names. Says when it moves the label;
    records nothing when the label names that bundle already."""
    check_order(ref, name, "label set")
    cfg = load_config()
    repository = open_repository(cfg, write=True)
    bundle = repository.resolve(ref)
    before, record = repository.set_label(bundle.repo, name, bundle.id, cfg.author)
    if record is None:
        info(f"{name} already names {short(bundle.id)}; nothing recorded")
    elif before is not None:
        info(f"{name}: {short(before.bundle)} → {short(bundle.id)}")
    else:
        info(f"{name}: new label on {short(bundle.id)}")
    click.echo(bundle.id)


@label.command("get")
@click.argument("repo", shell_complete=complete_repo)
@click.argument("name")
@json_option
def label_get(repo: str, name: str, as_json: bool) -> None:
    """Show label NAME of REPO with its history, newest first."""
    repository = open_repository()
    repository.get_repo(repo)
    log = repository.ref_log(repo, LABEL, name)
    if not log:
        raise NotFound(f"no label {name!r} in repo {repo!r}; see 'datamonfs label list {repo}'")
    print_refs(log, as_json)


@label.command("list")
@click.argument("repo", shell_complete=complete_repo)
@json_option
def label_list(repo: str, as_json: bool) -> None:
    """List the labels of REPO and the bundles they name now."""
    print_refs(open_repository().list_refs(repo, LABEL), as_json)


@click.group()
def branch() -> None:
    """Lines of bundles; uploads and commits move a branch's head."""


@branch.command("create")
@click.argument("ref", shell_complete=complete_ref)
@click.argument("name")
def branch_create(ref: str, name: str) -> None:
    """Start branch NAME at the bundle REF names (a label's name is refused)."""
    check_order(ref, name, "branch create")
    cfg = load_config()
    repository = open_repository(cfg, write=True)
    bundle = repository.resolve(ref)
    if repository.ref_head(bundle.repo, BRANCH, name):
        raise AlreadyExists(f"branch {name!r} already exists in {bundle.repo!r}")
    repository.append_ref(bundle.repo, BRANCH, name, bundle.id, cfg.author)
    click.echo(bundle.id)


@branch.command("list")
@click.argument("repo", shell_complete=complete_repo)
@json_option
def branch_list(repo: str, as_json: bool) -> None:
    """List the branches of REPO and their heads."""
    print_refs(open_repository().list_refs(repo, BRANCH), as_json)


@branch.command("log")
@click.argument("ref", metavar="REPO:BRANCH", shell_complete=complete_ref)
@json_option
def branch_log(ref: str, as_json: bool) -> None:
    """Every head BRANCH has had, newest first, with its bundle's message."""
    repo, name = parse_branch_ref(ref)
    repository = open_repository()
    repository.get_repo(repo)
    log = repository.ref_log(repo, BRANCH, name)
    if not log:
        raise NotFound(f"no branch {name!r} in repo {repo!r}; see 'datamonfs branch list {repo}'")
    messages = {b: repository.get_bundle(repo, b).message for b in {r.bundle for r in log}}
    print_refs(log, as_json, messages)
