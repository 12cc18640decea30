"""The targets of issue 14 (speed), checked against a run: each names a figure of a table,
the column it is measured against (or none: datamonfs' own median), the least it must
reach, and the figure the issue started from. The report computes them from the samples,
so `scripts/bench.py --report-only` computes them too; a scenario that did not run leaves
its targets "not run"."""

from __future__ import annotations

from dataclasses import dataclass

from .measure import OURS, Figure, Results

SEQ = "Sequential read of one"
RANDOM = "Random reads in the"
PARALLEL = "Parallel readers of"
WALK = "find + stat of"
WRITE = "Write through a writable mount"


@dataclass(frozen=True)
class Goal:
    name: str
    table: str  # how the table's title starts
    figure: str
    against: str | None  # the column of the ratio; None: datamonfs' median in its unit
    at_least: float
    today: str  # when the issue was written
    unit: str = ""  # of `at_least` when it is no ratio

    def figure_of(self, results: Results) -> Figure | None:
        for table in results.tables:
            if table.title.startswith(self.table):
                for fig in table.figures:
                    if fig.name == self.figure:
                        return fig
        return None

    def goal_text(self) -> str:
        if self.against is None:
            return f"≥ {self.at_least:,.0f} {self.unit}"
        return f"≥ {self.at_least:.2f}× {self.against}"

    def measured(self, results: Results) -> tuple[float | None, str]:
        """The value this run reached, and how the report shows it."""
        fig = self.figure_of(results)
        if fig is None:
            return None, "not run"
        if self.against is None:
            value = fig.median(OURS)
            return value, "–" if value is None else f"{value:,.0f} {fig.unit}"
        value = fig.ratio(self.against)
        return value, "–" if value is None else f"{value:.2f}×"


# The "today" figures: the where it gives them (a quiet machine, medians of 3),
# else the committed report of 2026-11-24 it started from.
GOALS = [
    Goal("warm kernel cache / the pyfuse3 memory FS", SEQ, "warm kernel cache",
         "pyfuse3 memory FS", 0.95, "0.85× (1 MiB readv, median of 5)"),
    Goal("warm block cache, kernel cache dropped", SEQ, "warm cache, kernel cache dropped",
         None, 1200, "715 MB/s", "MB/s"),
    Goal("warm block cache, kernel cache dropped, vs rclone", SEQ,
         "warm cache, kernel cache dropped", "rclone", 1.5, "0.90×"),
    Goal("cold sequential read vs rclone", SEQ, "cold: empty caches", "rclone", 2.0, "1.32×"),
    Goal("cold sequential read vs local disk", SEQ, "cold: empty caches", "local disk", 0.95,
         "0.64×"),
    Goal("random 4 KiB reads, warm, vs rclone", RANDOM, "random 4 KiB reads, warm cache",
         "rclone", 1.0, "0.34×"),
    Goal("4 parallel cold readers vs rclone", PARALLEL, "4 parallel readers, cold", "rclone",
         1.5, "0.80×"),
    Goal("16 parallel cold readers vs rclone", PARALLEL, "16 parallel readers, cold", "rclone",
         1.5, "0.67×"),
    Goal("untar of small files into a writable mount vs local disk", WRITE,
         "untar of small files, no sync", "local disk", 0.3, "0.03×"),
    Goal("untar of small files, both ending with sync -f, vs local disk", WRITE,
         "untar of small files, then sync -f", "local disk", 0.3, "0.12× (3,000 files)"),
    Goal("first find + stat walk, cold, vs local disk", WALK, "first walk, cold", "local disk",
         0.8, "0.41×"),
]


def markdown(results: Results, goals: list[Goal] = GOALS) -> list[str]:
    """The issue's targets as a table: today's figure, the goal, this run's, met or not."""
    out = ["| target | today | goal | this run | |", "|---|---|---|---|---|"]
    for g in goals:
        value, text = g.measured(results)
        verdict = "–" if value is None else "met" if value >= g.at_least else "**missed**"
        out.append(f"| {g.name} | {g.today} | {g.goal_text()} | {text} | {verdict} |")
    return out
