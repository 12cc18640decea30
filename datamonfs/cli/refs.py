"""datamonfs label set|get|list and branch create|list|log"""

from __future__ import annotations

import click

from ..core.names import is_name, parse_branch_ref
from ..core.repository import BRANCH, LABEL
from ..errors import NotFound
from ..sdk import Ref
from .common import emit_json, info, iso_time, json_option, open_api, short
from .completion import complete_ref, complete_repo


def print_refs(records: list[Ref], as_json: bool, messages: dict[str, str] | None = None
               ) -> None:
    if as_json:
        emit_json([{**r.to_json(), **({"message": messages[r.bundle]} if messages else {})}
                   for r in records])
        return
    for r in records:
        tail = f"\t{messages[r.bundle]}" if messages else ""
        click.echo(f"{r.name}\t{r.bundle}\t{iso_time(r.time_ns)}\t{r.author}{tail}")


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
    store = open_api(write=True)
    bundle = store.bundle(ref)
    before, record = store.repo(bundle.repo).set_label(name, bundle)
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
    log = open_api().repo(repo).ref_log(LABEL, name)
    if not log:
        raise NotFound(f"no label {name!r} in repo {repo!r}; see 'datamonfs label list {repo}'")
    print_refs(log, as_json)


@label.command("list")
@click.argument("repo", shell_complete=complete_repo)
@json_option
def label_list(repo: str, as_json: bool) -> None:
    """List the labels of REPO and the bundles they name now."""
    print_refs(open_api().repo(repo).labels(), as_json)


@click.group()
def branch() -> None:
    """Lines of bundles; uploads and commits move a branch's head."""


@branch.command("create")
@click.argument("ref", shell_complete=complete_ref)
@click.argument("name")
def branch_create(ref: str, name: str) -> None:
    """Start branch NAME at the bundle REF names (a label's name is refused)."""
    check_order(ref, name, "branch create")
    store = open_api(write=True)
    bundle = store.bundle(ref)
    store.repo(bundle.repo).create_branch(name, bundle)
    click.echo(bundle.id)


@branch.command("list")
@click.argument("repo", shell_complete=complete_repo)
@json_option
def branch_list(repo: str, as_json: bool) -> None:
    """List the branches of REPO and their heads."""
    print_refs(open_api().repo(repo).branches(), as_json)


@branch.command("log")
@click.argument("ref", metavar="REPO:BRANCH", shell_complete=complete_ref)
@json_option
def branch_log(ref: str, as_json: bool) -> None:
    """Every head BRANCH has had, newest first, with its bundle's message."""
    repo, name = parse_branch_ref(ref)
    store = open_api()
    log = store.repo(repo).ref_log(BRANCH, name)
    if not log:
        raise NotFound(f"no branch {name!r} in repo {repo!r}; see 'datamonfs branch list {repo}'")
    messages = {b: store.bundle_by_id(repo, b).message for b in {r.bundle for r in log}}
    print_refs(log, as_json, messages)
