"""datamonfs cache status | prefetch | clear"""

from __future__ import annotations

import click


@click.group()
def cache() -> None:
    """The local block cache shared by every datamonfs process."""
