"""Lineage: which bundles a bundle was made from, and which were made from it.

A bundle's record names its inputs (`inputs`, docs/FORMAT.md §5.5), so walking up is
reading records. Walking down would be a scan of every bundle record of every repo,
so each bundle with inputs also leaves one empty marker key per input:

    lineage/IN-REPO/IN-ID/OUT-REPO/OUT-ID

written right after the bundle record (`Repository.write_bundle`) and before any ref
names it, with put-if-absent: a re-run writes the same keys. Markers are only hints:
a reader takes the bundle a marker names as a child only when that bundle's record
really lists the input (so a planted marker cannot invent lineage), and refuses a
key of any other form (IntegrityError, as for every listing of the store).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

from ..errors import IntegrityError, NotFound
from .encoding import is_address
from .model import Bundle
from .names import is_name
from .stores.base import Store

PREFIX = "lineage/"
MAX_NODES = 10_000  # bundles one lineage query visits at most (a graph is shown whole)

BundleKey = tuple[str, str]  # (repo, bundle id)


def marker_keys(bundle: Bundle) -> list[str]:
    """The markers a bundle with inputs leaves, one per input."""
    return [f"{PREFIX}{i.repo}/{i.bundle}/{bundle.repo}/{bundle.id}" for i in bundle.inputs]


def children(store: Store, repo: str, bundle_id: str) -> list[BundleKey]:
    """(repo, id) of the bundles whose markers say they were made from this one, as
    the keys say (callers check each against its record)."""
    prefix = f"{PREFIX}{repo}/{bundle_id}/"
    found = []
    for key in store.list(prefix):
        parts = key[len(prefix):].split("/") if key.startswith(prefix) else []
        if len(parts) != 2 or not is_name(parts[0]) or not is_address(parts[1]):
            raise IntegrityError(f"unexpected key {key!r:.200} in the store; remove it")
        found.append((parts[0], parts[1]))
    return sorted(found)


@dataclass
class Graph:
    """Bundles and `made from` edges (input, output), found from one bundle."""

    start: BundleKey
    bundles: dict[BundleKey, Bundle] = field(default_factory=dict)
    edges: list[tuple[BundleKey, BundleKey]] = field(default_factory=list)
    missing: set[BundleKey] = field(default_factory=set)  # inputs whose bundle is gone
    truncated: bool = False  # MAX_NODES or the depth stopped the walk somewhere

    def inputs_of(self, key: BundleKey) -> list[BundleKey]:
        return [a for a, b in self.edges if b == key]

    def outputs_of(self, key: BundleKey) -> list[BundleKey]:
        return [b for a, b in self.edges if a == key]


def walk(store: Store, get_bundle: Callable[[str, str], Bundle], start: Bundle,
         up: bool = True, down: bool = True, depth: int | None = None) -> Graph:
    """The lineage of `start`: up to `depth` generations of inputs (up) and of bundles
    made from it (down); None: all of them (at most MAX_NODES bundles)."""
    graph = Graph((start.repo, start.id))
    graph.bundles[graph.start] = start
    edges: set[tuple[BundleKey, BundleKey]] = set()
    for direction, wanted in (("up", up), ("down", down)):
        if not wanted:
            continue
        frontier, generation = [graph.start], 0
        seen = {graph.start}
        while frontier and (depth is None or generation < depth):
            generation += 1
            nxt = []
            for key in frontier:
                for other in _neighbours(store, get_bundle, graph, key, direction):
                    edge = (other, key) if direction == "up" else (key, other)
                    if edge not in edges:
                        edges.add(edge)
                        graph.edges.append(edge)
                    if other not in seen and other not in graph.missing:
                        seen.add(other)
                        nxt.append(other)
                if len(graph.bundles) >= MAX_NODES:
                    graph.truncated = True
                    nxt = []
                    break
            frontier = nxt
        if frontier and any(_has_more(store, graph, k, direction) for k in frontier):
            graph.truncated = True
    return graph


def _neighbours(store: Store, get_bundle, graph: Graph, key: BundleKey,
                direction: str) -> Iterator[BundleKey]:
    if key in graph.missing:
        return
    bundle = graph.bundles[key]
    if direction == "up":
        for i in bundle.inputs:
            other = (i.repo, i.bundle)
            if other not in graph.bundles and other not in graph.missing:
                try:
                    graph.bundles[other] = get_bundle(*other)
                except NotFound:  # a reader does not require inputs to exist (FORMAT §5.5)
                    graph.missing.add(other)
            yield other
        return
    for other in children(store, *key):
        if other not in graph.bundles:
            try:
                child = get_bundle(*other)
            except NotFound:
                raise IntegrityError(f"lineage marker of bundle {other[1][:12]} of "
                                     f"{other[0]!r} names a bundle that does not exist; "
                                     "remove it") from None
            if not any((i.repo, i.bundle) == key for i in child.inputs):
                raise IntegrityError(f"lineage marker of bundle {other[1][:12]} of "
                                     f"{other[0]!r}: that bundle was not made from "
                                     f"{key[1][:12]}; remove the marker")
            graph.bundles[other] = child
        yield other


def _has_more(store: Store, graph: Graph, key: BundleKey, direction: str) -> bool:
    if key in graph.missing:
        return False
    if direction == "up":
        return bool(graph.bundles[key].inputs)
    return bool(children(store, *key))
