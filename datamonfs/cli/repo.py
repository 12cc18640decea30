"""datamonfs repo create | list | get"""

from __future__ import annotations

import click

from .common import emit_json, json_option, open_api


@click.group()
def repo() -> None:
    """Create and list repos (one dataset with one lifecycle each)."""


@repo.command("create")
@click.argument("name")
@click.option("-d", "--description", default="", help="What the dataset is.")
def create(name: str, description: str) -> None:
    """Create the repo NAME."""
    click.echo(open_api(write=True).create_repo(name, description).name)


@repo.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List every repo in the store."""
    repos = open_api().repos()
    if as_json:
        emit_json([r.to_json() for r in repos])
        return
    for r in repos:
        click.echo(f"{r.name}\t{r.to_json()['time']}\t{r.author}\t{r.description}")


@repo.command("get")
@click.argument("name")
@json_option
def get(name: str, as_json: bool) -> None:
    """Show one repo."""
    r = open_api().repo(name)
    if as_json:
        emit_json(r.to_json())
        return
    for key, value in r.to_json().items():
        click.echo(f"{key}: {value}")
