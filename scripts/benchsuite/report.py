"""Results -> bench/results/{results.json, REPORT.md, *.png}. The report can be rebuilt
from the JSON alone (scripts/bench.py --report-only)."""

from __future__ import annotations

import json
import os
import re
import statistics

from . import goals
from .measure import OURS, Figure, Results, Series, Table


def fmt(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if value >= 0.1 else f"{value:.3f}"


def cell(fig: Figure, column: str) -> str:
    values = fig.samples.get(column)
    if not values:
        return "–"
    text = fmt(fig.median(column))
    if len(values) > 1 and min(values) != max(values):
        text += f" ({fmt(min(values))}–{fmt(max(values))})"
    return text


def ratio_text(fig: Figure, column: str) -> str:
    r = fig.ratio(column)
    return "–" if r is None else f"{r:.2f}×"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def table_markdown(table: Table) -> list[str]:
    others = [c for c in table.columns if c != OURS]
    header = ["figure", "unit"] + table.columns + [f"vs {c}" for c in others]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for fig in table.figures:
        row = [fig.name + (f" ({fig.note})" if fig.note else ""), fig.unit]
        row += [cell(fig, c) for c in table.columns] + [ratio_text(fig, c) for c in others]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def summary_rows(results: Results) -> list[str]:
    """One line per figure that has a limit or a peer: the headline ratios."""
    lines = ["| scenario | figure | datamonfs | vs the limit | vs peers |", "|---|---|---|---|---|"]
    for table in results.tables:
        for fig in table.figures:
            if OURS not in fig.samples:
                continue
            limit = ratio_text(fig, table.limit) if table.limit else "–"
            peers = ", ".join(f"{c} {ratio_text(fig, c)}" for c in table.columns
                              if c not in (OURS, table.limit) and fig.ratio(c) is not None)
            if limit == "–" and not peers:
                continue
            lines.append(f"| {table.scenario} | {fig.name} | {fmt(fig.median(OURS))} {fig.unit} "
                         f"| {limit} | {peers or '–'} |")
    return lines


def markdown(results: Results, charts: dict[str, str]) -> str:
    m = results.meta
    out = [f"# datamonfs benchmark report ({m['size']} size)", "",
           f"Run {m['date']} on {m['machine']}; {m['reps']} repetitions of every timed "
           "comparison, the tools alternating; each cell is the median with the min–max "
           "of the repetitions in brackets. The machine is noisy: the ratios are the "
           "result, absolute figures are context.", "",
           "**Ratios** (`vs X`) are datamonfs' performance as a multiple of X's, whichever way "
           "the unit points: above 1× datamonfs is faster or smaller, below 1× it is slower "
           "or bigger. The *limit* column is the physical limit: the same bytes on local "
           "disk, or the bytes that actually changed.", ""]
    out += [f"- {line}" for line in m.get("conditions", [])]
    out += ["", "Tool versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()), ""]
    out += ["## Issue 14 targets", "",
            "The speed targets of issue 14, computed from this run's samples (medians); "
            "*today* is the figure the issue started from (its own where it gives one, else "
            "the report of 2026-11-24).", ""]
    out += goals.markdown(results) + [""]
    if results.targets:
        out += ["## Targets", "", "| target | goal | measured | |", "|---|---|---|---|"]
        out += [f"| {t.name} | {t.goal} | {t.measured} | {'met' if t.met else '**missed**'} |"
                for t in results.targets]
        out.append("")
    out += ["## Summary", ""] + summary_rows(results) + [""]
    scenario = None
    for table in results.tables:
        if table.scenario != scenario:
            scenario = table.scenario
            out += [f"## {scenario}", ""]
            for series in results.series:
                if series.scenario == scenario and series.title in charts:
                    out += [f"![{series.title}]({charts[series.title]})", ""]
        out += [f"### {table.title}", ""]
        if table.limit:
            out += [f"Limit: {table.limit}.", ""]
        out += table_markdown(table) + [""]
        out += [f"- {note}" for note in table.notes]
        if table.notes:
            out.append("")
        if table.title in charts:
            out += [f"![{table.title}]({charts[table.title]})", ""]
    return "\n".join(out)


def table_chart(table: Table, path: str) -> bool:
    """Horizontal bars per figure: each column's performance relative to the limit (or to
    datamonfs when there is none), on a log scale, with min–max whiskers."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reference = table.limit or OURS
    rows = [f for f in table.figures if f.median(reference) and len(f.samples) > 1]
    if not rows:
        return False
    columns = [c for c in table.columns if any(c in f.samples for f in rows)]
    height = 0.8 / len(columns)
    fig, ax = plt.subplots(figsize=(9, 0.9 + 0.25 * len(rows) * len(columns) + 0.3 * len(rows)))
    for k, column in enumerate(columns):
        ys, xs, lo, hi = [], [], [], []
        for i, f in enumerate(rows):
            values = f.samples.get(column)
            if not values:
                continue
            ref = f.median(reference)
            rel = [(v / ref) if f.higher_is_better else (ref / v) for v in values if v]
            if not rel:
                continue
            mid = statistics.median(rel)
            ys.append(i + k * height)
            xs.append(mid)
            lo.append(mid - min(rel))
            hi.append(max(rel) - mid)
        ax.barh(ys, xs, height=height, xerr=[lo, hi], label=column, capsize=2)
    ax.set_xscale("log")
    ax.axvline(1, color="black", linewidth=0.8)
    ax.set_yticks([i + height * (len(columns) - 1) / 2 for i in range(len(rows))])
    ax.set_yticklabels([f.name for f in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"performance relative to {reference} (log scale; right is better)")
    ax.set_title(table.title, fontsize=10)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def series_chart(series: Series, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, ys in series.y.items():
        ax.plot(series.x, ys, marker="o", label=name)
    ax.set_xlabel(series.x_label)
    ax.set_ylabel(series.y_label)
    ax.set_title(series.title, fontsize=10)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: Results, out: str) -> str:
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(out):  # charts of an earlier run, whose titles may differ
        if name.endswith(".png"):
            os.unlink(os.path.join(out, name))
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results.to_json(), f, indent=1)
    charts: dict[str, str] = {}
    for table in results.tables:
        name = slug(table.title) + ".png"
        if table_chart(table, os.path.join(out, name)):
            charts[table.title] = name
    for series in results.series:
        name = slug(series.title) + ".png"
        series_chart(series, os.path.join(out, name))
        charts[series.title] = name
    path = os.path.join(out, "REPORT.md")
    with open(path, "w") as f:
        f.write(markdown(results, charts))
    return path


def load(out: str) -> Results:
    with open(os.path.join(out, "results.json")) as f:
        return Results.from_json(json.load(f))
