"""datamonfs wait REPO:LABEL [--timeout DURATION]: block until a label exists.

Pods order themselves on data: an init container waits for the label its upstream job
sets. In a pod (DATAMONFS_POD_NAMESPACE and DATAMONFS_POD_NAME set) the node daemon
watches the store, since the pod has no credentials of its own; elsewhere this process
does. Either way the store is looked at about once a second (Repository.wait_ref).
"""

from __future__ import annotations

import re
import time

import click

from ..core.names import parse_ref
from ..core.repository import LABEL
from ..daemon.client import Client
from ..daemon.store_ops import WAIT_SLICE
from ..errors import DatamonError
from .common import open_repository, socket_option
from .pod import pod_from_env

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


class TimedOut(DatamonError):
    code = "timeout"


def parse_duration(text: str) -> float:
    """90, 90s, 1.5m, 2h, 1d, 500ms: seconds."""
    m = _DURATION.fullmatch(text.strip())
    if not m:
        raise click.BadParameter(f"{text!r} is not a duration: write 30s, 5m, 2h, 1d or seconds")
    return float(m.group(1)) * _UNITS[m.group(2)]


@click.command("wait", short_help="Wait until a label exists; print its bundle id.")
@click.argument("ref", metavar="REPO:LABEL")
@click.option("--timeout", default=None, metavar="DURATION",
              help="Give up after this long (30s, 5m, 2h, 1d); exit 1. Default: wait forever.")
@socket_option
def wait(ref: str, timeout: str | None, socket_path: str | None) -> None:
    """Block until label LABEL of REPO exists, then print the bundle it names. The repo
    need not exist yet. On timeout exit 1 with a message."""
    repo, label = parse_ref(ref)
    if label is None:
        raise click.UsageError(f"{ref!r}: name the label, REPO:LABEL")
    seconds = parse_duration(timeout) if timeout is not None else None
    ctx = pod_from_env()
    if ctx is None:
        head = open_repository().wait_ref(repo, LABEL, label, seconds)
        bundle = head.bundle if head else None
    else:
        bundle = _through_daemon(socket_path, ctx.identity(), ref, seconds)
    if bundle is None:
        raise TimedOut(f"label {label!r} of repo {repo!r} did not appear within {timeout}")
    click.echo(bundle)


def _through_daemon(socket_path: str | None, pod: dict, ref: str,
                    seconds: float | None) -> str | None:
    """Ask the node daemon, one slice at a time until our own deadline."""
    deadline = None if seconds is None else time.monotonic() + seconds
    with Client(socket_path) as client:
        while True:
            left = WAIT_SLICE if deadline is None else max(0.0, deadline - time.monotonic())
            slice_ = min(left, WAIT_SLICE)
            try:
                return client.call("wait", timeout=slice_ + 30, ref=ref, pod=pod,
                                   seconds=slice_)["bundle"]
            except DatamonError as e:
                if e.code != "timeout":
                    raise
            if deadline is not None and time.monotonic() >= deadline:
                return None
