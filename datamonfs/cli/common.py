"""What every command shares: config, the repository, output and progress."""

from __future__ import annotations

import datetime
import json
import sys
import time
from contextlib import contextmanager
from typing import Iterator

import click

from .. import cache
from ..core import config as config_mod
from ..core.repository import Repository

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
socket_option = click.option(
    "--socket", "socket_path", default=None, metavar="PATH",
    help="The daemon's control socket (default: $DATAMONFS_SOCKET, else "
         "$XDG_RUNTIME_DIR/datamonfs/daemon.sock, else /run/datamonfs/daemon.sock for root).")


def load_config() -> config_mod.Config:
    return config_mod.load()


def open_repository(cfg: config_mod.Config | None = None) -> Repository:
    """The store of the config, reading metadata objects through the shared cache."""
    return cache.open_repository(cfg or load_config())


def emit_json(doc) -> None:
    click.echo(json.dumps(doc, indent=2, sort_keys=True))


def iso_time(ns: int) -> str:
    return datetime.datetime.fromtimestamp(ns / 1e9, datetime.timezone.utc).isoformat(timespec="seconds")


def human_size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def info(message: str) -> None:
    """Human-readable notes go to stderr, keeping stdout for results."""
    click.echo(message, err=True)


@contextmanager
def progress_bar(total: int, label: str) -> Iterator:
    """A progress bar (bytes, rate, ETA) on stderr when it is a terminal; else None."""
    if not sys.stderr.isatty():
        yield None
        return
    start = time.monotonic()
    done = 0
    with click.progressbar(length=max(total, 1), label=label, file=sys.stderr, show_eta=True,
                           item_show_func=lambda text: text) as bar:
        def advance(n: int) -> None:
            nonlocal done
            done += n
            rate = done / max(time.monotonic() - start, 1e-6)
            bar.update(n, f"{human_size(done)} at {human_size(int(rate))}/s")
        yield advance
