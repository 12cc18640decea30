"""datamonfs daemon start|stop|status, mount, unmount, mounts"""

from __future__ import annotations

import click


@click.group()
def daemon() -> None:
    """The background process that serves mounts."""


# Top-level commands this module adds to `datamonfs` besides the `daemon` group.
commands: list[click.Command] = [daemon]
