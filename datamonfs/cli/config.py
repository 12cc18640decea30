"""datamonfs config create"""

from __future__ import annotations

import click

from ..core import config as config_mod
from ..core.stores import open_store
from .common import info


@click.group()
def config() -> None:
    """Who you are and where your data lives."""


@config.command("create")
@click.option("--name", required=True, help="Author name recorded in bundles.")
@click.option("--email", required=True, help="Author email recorded in bundles.")
@click.option("--store", default=None,
              help="Store URL: file:///PATH or gs://BUCKET[/PREFIX]. "
                   "Default: a directory under the XDG data directory.")
def create(name: str, email: str, store: str | None) -> None:
    """Write the config file (replacing any earlier one)."""
    if store:
        open_store(store).close()  # refuse a URL we cannot parse or open
    path = config_mod.save({"name": name, "email": email, "store": store})
    info(f"wrote {path}")
