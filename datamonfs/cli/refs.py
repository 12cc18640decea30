"""datamonfs label set|get|list and branch create|list|log"""

from __future__ import annotations

import click

from ..core.model import RefRecord
from ..core.names import check_name, parse_branch_ref
from ..core.repository import BRANCH, LABEL
from ..errors import AlreadyExists, NotFound
from .common import emit_json, iso_time, json_option, load_config, open_repository


def ref_json(r: RefRecord) -> dict:
    return {"repo": r.repo, "kind": r.kind, "name": r.name, "bundle": r.bundle,
            "time": iso_time(r.time), "author": r.author_name, "email": r.author_email}


def print_refs(records: list[RefRecord], as_json: bool) -> None:
    if as_json:
        emit_json([ref_json(r) for r in records])
        return
    for r in records:
        click.echo(f"{r.name}\t{r.bundle}\t{iso_time(r.time)}\t{r.author_name}")


@click.group()
def label() -> None:
    """Name bundles with labels (a label can move; its history is kept)."""


@label.command("set")
@click.argument("ref")
@click.argument("name")
def label_set(ref: str, name: str) -> None:
    """Point label NAME at the bundle REF (REPO:REF) names."""
    cfg = load_config()
    check_name(name, "label name")
    repository = open_repository(cfg)
    bundle = repository.resolve(ref)
    repository.append_ref(bundle.repo, LABEL, name, bundle.id, cfg.author)
    click.echo(bundle.id)


@label.command("get")
@click.argument("repo")
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
@click.argument("repo")
@json_option
def label_list(repo: str, as_json: bool) -> None:
    """List the labels of REPO and the bundles they name now."""
    print_refs(open_repository().list_refs(repo, LABEL), as_json)


@click.group()
def branch() -> None:
    """Lines of bundles; uploads and commits move a branch's head."""


@branch.command("create")
@click.argument("ref")
@click.argument("name")
def branch_create(ref: str, name: str) -> None:
    """Start branch NAME at the bundle REF names."""
    cfg = load_config()
    check_name(name, "branch name")
    repository = open_repository(cfg)
    bundle = repository.resolve(ref)
    if repository.ref_head(bundle.repo, BRANCH, name):
        raise AlreadyExists(f"branch {name!r} already exists in {bundle.repo!r}")
    repository.append_ref(bundle.repo, BRANCH, name, bundle.id, cfg.author)
    click.echo(bundle.id)


@branch.command("list")
@click.argument("repo")
@json_option
def branch_list(repo: str, as_json: bool) -> None:
    """List the branches of REPO and their heads."""
    print_refs(open_repository().list_refs(repo, BRANCH), as_json)


@branch.command("log")
@click.argument("ref", metavar="REPO:BRANCH")
@json_option
def branch_log(ref: str, as_json: bool) -> None:
    """Every head BRANCH has had, newest first."""
    repo, name = parse_branch_ref(ref)
    repository = open_repository()
    repository.get_repo(repo)
    log = repository.ref_log(repo, BRANCH, name)
    if not log:
        raise NotFound(f"no branch {name!r} in repo {repo!r}; see 'datamonfs branch list {repo}'")
    print_refs(log, as_json)


