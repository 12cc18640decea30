"""How much of a bundle the block cache holds: cache locality, for schedulers.

A node daemon reports it per bundle (the `locality` op, `datamonfs cache status`), and
`datamonfs node-labels` turns it into node labels a scheduler's nodeAffinity can prefer,
so that jobs reading a bundle run where its bytes already are.
"""

from __future__ import annotations

from ..core.model import Bundle
from ..core.repository import LABEL, Repository
from .blocks import BlockCache
from .in_place import reads_in_place
from .warm import files


def presence(repo: Repository, blocks: BlockCache, bundle: Bundle) -> dict:
    """The bytes of a bundle's distinct chunks, and how many of them the cache holds
    (`fraction`: 1.0 for a bundle of no bytes). Walks the bundle's tree (through the
    metadata cache) and looks every chunk up in the index, reading no block. A local
    store read in place (in_place.py) holds every byte on this machine: all of it counts."""
    local = reads_in_place(repo.store)
    seen: set[str] = set()
    total = cached = 0
    for _, entry in files(repo, bundle):
        for ref in repo.trees.chunks(entry):
            if ref.addr in seen:
                continue
            seen.add(ref.addr)
            total += ref.size
            if local or blocks.contains(ref.addr):
                cached += ref.size
    return {"repo": bundle.repo, "bundle": bundle.id, "files": bundle.files,
            "bytes": total, "cached_bytes": cached,
            "fraction": round(cached / total, 4) if total else 1.0}


def report(repo: Repository, blocks: BlockCache, bundles: list[Bundle]) -> list[dict]:
    """`presence` of each bundle, with the labels that name it now (for node labels)."""
    labels: dict[str, list] = {}
    rows = []
    for b in bundles:
        if b.repo not in labels:
            labels[b.repo] = repo.list_refs(b.repo, LABEL)
        rows.append({**presence(repo, blocks, b),
                     "labels": [r.name for r in labels[b.repo] if r.bundle == b.id]})
    return rows
