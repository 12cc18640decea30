"""What every command shares: config, the repository, output and progress.

Output conventions (docs/CLI.md): results on stdout (with --json one JSON document),
notes and progress on stderr (none with --quiet), errors one line on stderr.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import re
import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import click

from .. import cache
from ..core import config as config_mod
from ..core.repository import Repository
from ..errors import DatamonError
from ..sdk.store import Store

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
socket_option = click.option(
    "--socket", "socket_path", default=None, metavar="PATH",
    help="The daemon's control socket (default: $DATAMONFS_SOCKET, else "
         "$XDG_RUNTIME_DIR/datamonfs/daemon.sock, else /run/datamonfs/daemon.sock for root).")

PROGRESS_INTERVAL = float(os.environ.get("DATAMONFS_PROGRESS_INTERVAL", "30"))
_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet
    if sys.stderr.isatty() and not quiet:
        # A slow store says it is retrying (core/stores/gcs.py logs it), on a terminal only:
        # a script sees nothing but the result or the one-line error.
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("datamonfs: %(message)s"))
        store_log = logging.getLogger("datamonfs.store")
        store_log.addHandler(handler)
        store_log.propagate = False


def load_config() -> config_mod.Config:
    return config_mod.load()


def open_api(cfg: config_mod.Config | None = None, write: bool = False) -> Store:
    """The config's store through the Python API (what the commands are a layer over).
    Only commands that write (`write`) may create a local store's directory; they then
    ask for the config's author, before anything is written."""
    cfg = cfg or load_config()
    store = Store(cfg, cfg.store_spec(), create=write or cfg.store_is_default)
    if write:
        store.author  # noqa: B018 -- ConfigError now when no author is configured
    return store


def open_repository(cfg: config_mod.Config | None = None, write: bool = False) -> Repository:
    """The store of the config, reading metadata objects through the shared cache (which
    also keeps what it learns of the store's packs). Only commands that write (`write`)
    may create a local store's directory."""
    return cache.open_repository(cfg or load_config(), create=write)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)?")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(text: str) -> float:
    """90, 90s, 1.5m, 2h, 1d, 2w, 500ms: seconds."""
    m = _DURATION.fullmatch(text.strip())
    if not m:
        raise click.BadParameter(f"{text!r} is not a duration: write 30s, 5m, 2h, 1d or seconds")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_when(text: str) -> datetime.datetime:
    """A time for --since/--until: ISO 8601 (2024-05-01, 2024-05-01T12:00:00+02:00; without
    a zone, UTC), or a duration ago (3d, 12h, 2w)."""
    if _DURATION.fullmatch(text.strip()):
        return datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(
            seconds=parse_duration(text))
    try:
        when = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise DatamonError(f"{text!r:.100} is not a time: write 2024-05-01, "
                           "2024-05-01T12:00:00+02:00, or how long ago (3d, 12h, 2w)") from None
    return when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)


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


def mode_text(mode: int) -> str:
    """Permission bits as in chmod: "644", "4755"."""
    return format(mode, "o").rjust(3, "0")


def short(bundle_id: str | None) -> str:
    return (bundle_id or "none")[:12]


def info(message: str) -> None:
    """Human-readable notes go to stderr, keeping stdout for results (none with --quiet)."""
    if not _quiet:
        click.echo(message, err=True)


@contextmanager
def progress_bar(total: int | None, label: str) -> Iterator[Callable[[int], None] | None]:
    """A callable to count bytes done: a tqdm bar on stderr when it is a terminal (throttled
    redraws, smoothed rate and ETA), else a line on stderr every PROGRESS_INTERVAL seconds
    (DATAMONFS_PROGRESS_INTERVAL) for long operations; None with --quiet."""
    if _quiet:
        yield None
        return
    if sys.stderr.isatty():
        import shutil

        from tqdm import tqdm

        size = shutil.get_terminal_size((100, 24))  # a fresh pty says 0x0 (tqdm: hidden)
        with tqdm(total=total or None, desc=label, unit="B", unit_scale=True, unit_divisor=1024,
                  file=sys.stderr, mininterval=0.25, smoothing=0.1, leave=True,
                  ncols=size.columns, nrows=size.lines) as bar:
            yield bar.update
        return
    start = last = time.monotonic()
    done = 0

    def advance(n: int) -> None:
        nonlocal done, last
        done += n
        now = time.monotonic()
        if now - last >= PROGRESS_INTERVAL:
            last = now
            share = f" of {human_size(total)} ({100 * done / total:.0f}%)" if total else ""
            rate = human_size(int(done / max(now - start, 1e-6)))
            click.echo(f"{label}: {human_size(done)}{share} at {rate}/s", err=True)

    yield advance
