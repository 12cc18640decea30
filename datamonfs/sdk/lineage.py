"""`Lineage`: what a bundle was made from and what was made from it, as Python objects,
text, JSON or a Graphviz graph (`datamonfs lineage` prints these)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from ..core.lineage import BundleKey, Graph

if TYPE_CHECKING:
    from .bundle import Bundle


class Lineage:
    """A lineage graph found from one bundle (`Store.lineage`, `Bundle.lineage`).

    `start` is the bundle asked about; `bundles` every bundle found; `edges` the pairs
    (input, output): output was made from input. `missing` lists inputs a record names
    whose bundle is not in the store; `truncated` says the depth (or the size bound)
    stopped the walk where there was more."""

    def __init__(self, graph: Graph, bundles: dict[BundleKey, "Bundle"]):
        self._graph = graph
        self._bundles = bundles
        self.start: Bundle = bundles[graph.start]
        self.missing: list[tuple[str, str]] = sorted(graph.missing)
        self.truncated = graph.truncated

    @property
    def bundles(self) -> list["Bundle"]:
        return list(self._bundles.values())

    @property
    def edges(self) -> list[tuple[tuple[str, str], tuple[str, str]]]:
        """((input repo, input id), (output repo, output id)) pairs."""
        return list(self._graph.edges)

    def inputs_of(self, bundle: "Bundle") -> list["Bundle"]:
        """The bundles of the graph `bundle` was made from."""
        return [self._bundles[k] for k in self._graph.inputs_of((bundle.repo, bundle.id))
                if k in self._bundles and k not in self._graph.missing]

    def outputs_of(self, bundle: "Bundle") -> list["Bundle"]:
        """The bundles of the graph made from `bundle`."""
        return [self._bundles[k] for k in self._graph.outputs_of((bundle.repo, bundle.id))]

    def to_json(self) -> dict:
        """{"start": REPO:ID, "bundles": [...], "edges": [{"input", "output"}], "missing",
        "truncated"}: bundles as `bundle get --json`, edges as REPO:ID refs."""
        return {"start": self.start.ref,
                "bundles": [b.to_json() for b in self._bundles.values()
                            if (b.repo, b.id) not in self._graph.missing],
                "edges": [{"input": f"{a[0]}:{a[1]}", "output": f"{b[0]}:{b[1]}"}
                          for a, b in self._graph.edges],
                "missing": [f"{r}:{i}" for r, i in self.missing],
                "truncated": self.truncated}

    def to_dot(self) -> str:
        """A Graphviz digraph, inputs pointing at what was made from them (`dot -Tsvg`)."""
        lines = ["digraph lineage {", "  rankdir=LR;", '  node [shape=box, fontname="monospace"];']
        for key, b in self._bundles.items():
            if key in self._graph.missing:
                continue
            label = f"{b.repo}:{b.id[:12]}\n{b.time.date().isoformat()} {b.author}\n{b.message[:60]}"
            style = ", style=bold" if b == self.start else ""
            lines.append(f"  {_quote(b.ref)} [label={_quote(label)}{style}];")
        for repo, bundle_id in self.missing:
            lines.append(f"  {_quote(f'{repo}:{bundle_id}')} [label="
                         f"{_quote(f'{repo}:{bundle_id[:12]}' + chr(10) + '(missing)')}, "
                         "style=dashed];")
        for a, b in self._graph.edges:
            lines.append(f"  {_quote(f'{a[0]}:{a[1]}')} -> {_quote(f'{b[0]}:{b[1]}')};")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_text(self) -> str:
        """For people: what the bundle was made from (indented by generation), then what
        was made from it. A bundle reached twice is shown once, then named again with
        "(above)"."""
        out = [_line(self.start, "")]
        up = list(self._tree(self._graph.start, self._graph.inputs_of, 1, set()))
        down = list(self._tree(self._graph.start, self._graph.outputs_of, 1, set()))
        if up:
            out += ["made from:", *up]
        if down:
            out += ["used to make:", *down]
        if self.truncated:
            out.append("(more beyond the depth asked for)")
        return "\n".join(out) + "\n"

    def _tree(self, key: BundleKey, step, level: int, shown: set) -> Iterator[str]:
        for other in step(key):
            indent = "  " * level
            if other in self._graph.missing:
                yield f"{indent}{other[0]}:{other[1][:12]}  (not in the store)"
                continue
            again = other in shown
            shown.add(other)
            yield _line(self._bundles[other], indent) + ("  (above)" if again else "")
            if not again:
                yield from self._tree(other, step, level + 1, shown)


def _line(b: "Bundle", indent: str) -> str:
    return (f"{indent}{b.repo}:{b.id[:12]}  {b.time.isoformat(timespec='seconds')}  "
            f"{b.author}  {b.message.splitlines()[0][:80] if b.message else ''}")


def _quote(text: str) -> str:
    """A Graphviz double-quoted string: quotes and backslashes escaped, newlines as \\n."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "\\n".join(escaped.splitlines() or [""]) + '"'
