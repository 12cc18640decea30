"""What a benchmark result is, and how repetitions are taken.

A scenario fills Tables. A table has columns (datamonfs, the physical limit, peers) and
rows (Figures); a figure keeps every sample of every column, so the report can show the
median and the min-max, and the JSON keeps the raw numbers.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Callable

OURS = "datamonfs"


@dataclass
class Figure:
    name: str
    unit: str
    higher_is_better: bool
    samples: dict[str, list[float]] = field(default_factory=dict)
    note: str = ""

    def median(self, column: str) -> float | None:
        values = self.samples.get(column)
        return statistics.median(values) if values else None

    def ratio(self, column: str) -> float | None:
        """datamonfs' performance as a multiple of column's: above 1, datamonfs is better."""
        ours, theirs = self.median(OURS), self.median(column)
        if not ours or not theirs:
            return None
        return ours / theirs if self.higher_is_better else theirs / ours


@dataclass
class Table:
    scenario: str
    title: str
    columns: list[str]               # datamonfs first; the others in report order
    limit: str | None = None         # which column is the physical limit
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def figure(self, name: str, unit: str, higher_is_better: bool, note: str = "") -> Figure:
        fig = Figure(name, unit, higher_is_better, note=note)
        self.figures.append(fig)
        return fig


@dataclass
class Series:
    """A line chart: y per x for each column (e.g. store bytes after each version)."""
    scenario: str
    title: str
    x_label: str
    y_label: str
    x: list[float]
    y: dict[str, list[float]]


@dataclass
class Target:
    name: str
    goal: str
    measured: str
    met: bool


@dataclass
class Results:
    meta: dict
    tables: list[Table] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Results":
        tables = [Table(**{**t, "figures": [Figure(**f) for f in t["figures"]]})
                  for t in data["tables"]]
        return cls(data["meta"], tables, [Series(**s) for s in data["series"]],
                   [Target(**t) for t in data["targets"]])


def alternate(reps: int, contenders: dict[str, Callable[[], dict[str, float]]]
              ) -> dict[str, dict[str, list[float]]]:
    """Run every contender once per repetition, rotating who goes first so that none
    always meets the machine in the same state; each returns {figure: value}.
    Result: {figure: {contender: [value per repetition]}}."""
    names = list(contenders)
    out: dict[str, dict[str, list[float]]] = {}
    for rep in range(reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            for figure, value in contenders[name]().items():
                out.setdefault(figure, {}).setdefault(name, []).append(value)
    return out


def fill(table: Table, measured: dict[str, dict[str, list[float]]],
         units: dict[str, tuple[str, bool]]) -> None:
    """Add one Figure per measured figure name; units: name -> (unit, higher_is_better)."""
    for name, samples in measured.items():
        unit, higher = units[name]
        table.figure(name, unit, higher).samples.update(samples)
