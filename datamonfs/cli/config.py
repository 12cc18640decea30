"""datamonfs config create | show | set"""

from __future__ import annotations

import click

from ..core import config as config_mod
from ..core.stores import StoreSpec, absolute_url, open_store
from ..errors import StoreUnavailable
from .common import emit_json, info, json_option


@click.group()
def config() -> None:
    """Who you are and where your data lives (docs/CLI.md lists the keys)."""


def check_store(url: str, credential: str) -> None:
    """The store must exist: a bucket that answers, or a directory (one-line error, exit 3)."""
    store = open_store(StoreSpec.from_environment(url, credential), create=False)
    try:
        if hasattr(store, "check"):
            store.check()
    finally:
        store.close()


@config.command("create")
@click.option("--name", required=True, help="Author name recorded in bundles.")
@click.option("--email", required=True, help="Author email recorded in bundles.")
@click.option("--store", default=None,
              help="Store URL: file:///PATH (or a path, made absolute) or gs://BUCKET[/PREFIX]. "
                   "Default: a directory under the XDG data directory.")
@click.option("--credential", default=None, metavar="FILE",
              help="GCS: a service account key or application-default credentials JSON file, "
                   "used by the CLI and the daemon. Default: Google's usual chain.")
@click.option("--no-check", is_flag=True,
              help="Do not check that the store exists (a directory, a bucket that answers).")
def create(name: str, email: str, store: str | None, credential: str | None,
           no_check: bool) -> None:
    """Write the config file. Keys it does not set (cache_dir, ...) are kept."""
    values = config_mod.read_file()
    values.update(name=name, email=email)
    if credential is not None:
        values["credential"] = config_mod.parse_value("credential", credential)
        from ..core.stores.gcs import load_credentials

        load_credentials(values["credential"])
    if store is not None:
        values["store"] = absolute_url(store)
        if not no_check:
            _check(values["store"], values.get("credential", ""))
    info(f"wrote {config_mod.save(values)}")


def _check(url: str, credential: str) -> None:
    try:
        check_store(url, credential)
    except StoreUnavailable as e:
        raise type(e)(f"{e} (--no-check skips this check)") from None


@config.command("set")
@click.argument("key", type=click.Choice(list(config_mod.KEYS)))
@click.argument("value")
@click.option("--no-check", is_flag=True, help="store: do not check that the store exists.")
def set_(key: str, value: str, no_check: bool) -> None:
    """Set one KEY of the config file to VALUE (the others are kept)."""
    values = config_mod.read_file()
    values[key] = config_mod.parse_value(key, value)
    if key == "credential":
        from ..core.stores.gcs import load_credentials

        load_credentials(values[key])
    if key == "store" and not no_check:
        _check(values[key], values.get("credential", ""))
    info(f"wrote {config_mod.save(values)}")


@config.command("show")
@json_option
def show(as_json: bool) -> None:
    """Every setting in effect and where it comes from (the file, the environment, or the
    default)."""
    cfg = config_mod.load()
    import os

    in_file = config_mod.read_file()
    env = {"store": "DATAMONFS_STORE", "cache_dir": "DATAMONFS_CACHE_DIR"}
    effective = {"name": cfg.name, "email": cfg.email, "store": cfg.store,
                 "credential": cfg.credential or None, "cache_dir": cfg.cache_dir,
                 "cache_size": cfg.cache_size, "commit_on_unmount": cfg.commit_on_unmount}
    source = {k: ("environment" if k in env and os.environ.get(env[k])
                  else "file" if k in in_file else "default") for k in effective}
    if as_json:
        emit_json({"path": cfg.path, "exists": cfg.exists, "settings": effective,
                   "sources": source})
        return
    click.echo(f"# {cfg.path}" + ("" if cfg.exists else " (does not exist)"))
    for key, value in effective.items():
        shown = "" if value is None else value
        click.echo(f"{key} = {str(shown).lower() if isinstance(value, bool) else shown}"
                   f"\t({source[key]}{' ' + env[key] if source[key] == 'environment' else ''})")
