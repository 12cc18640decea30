"""The Python API on a test store: a config of its own (author, cache directory)."""

from __future__ import annotations

import os

import datamonfs
from datamonfs.core.config import Config


def open_store(url: str, home, author: tuple[str, str] = ("Ada", "ada@example.org")
               ) -> datamonfs.Store:
    """datamonfs.open on `url` with a config whose cache lives under `home`."""
    cfg = Config(name=author[0], email=author[1], store=url,
                 cache_dir=os.path.join(str(home), "cache"))
    return datamonfs.open(url, config=cfg, create=True)


def tree_of(bundle: datamonfs.Bundle) -> dict[str, bytes | str]:
    """Every file's bytes and every link's target, by path."""
    out: dict[str, bytes | str] = {}
    for info in bundle.walk():
        out[info.path] = info.target if info.kind == "link" else bundle.read_bytes(info.path)
    return out
