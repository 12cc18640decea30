"""datamonfs repo create | list | get"""

from __future__ import annotations

import click

from ..core.model import RepoInfo
from .common import emit_json, iso_time, json_option, load_config, open_repository


def repo_json(r: RepoInfo) -> dict:
    return {"name": r.name, "description": r.description, "time": iso_time(r.time),
            "author": r.author_name, "email": r.author_email}


@click.group()
def repo() -> None:
    """Create and list repos (one dataset with one lifecycle each)."""


@repo.command("create")
@click.argument("name")
@click.option("-d", "--description", default="", help="What the dataset is.")
def create(name: str, description: str) -> None:
    """Create the repo NAME."""
    cfg = load_config()
    r = open_repository(cfg, write=True).create_repo(name, description, cfg.author)
    click.echo(r.name)


@repo.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List every repo in the store."""
    repos = open_repository().list_repos()
    if as_json:
        emit_json([repo_json(r) for r in repos])
        return
    for r in repos:
        click.echo(f"{r.name}\t{iso_time(r.time)}\t{r.author_name}\t{r.description}")


@repo.command("get")
@click.argument("name")
@json_option
def get(name: str, as_json: bool) -> None:
    """Show one repo."""
    r = open_repository().get_repo(name)
    if as_json:
        emit_json(repo_json(r))
        return
    for key, value in repo_json(r).items():
        click.echo(f"{key}: {value}")
