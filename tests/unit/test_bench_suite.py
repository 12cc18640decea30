"""The benchmark suite's arithmetic: who goes first, which way a ratio points, and that the
report says what the samples say (the suite itself runs with `make bench`)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))

from benchsuite import goals  # noqa: E402
from benchsuite.measure import OURS, Figure, Results, Table, alternate  # noqa: E402
from benchsuite.report import markdown, summary_rows  # noqa: E402


def test_alternate_rotates_who_goes_first_and_keeps_every_sample():
    order = []

    def contender(name, value):
        def one():
            order.append(name)
            return {"figure": value}
        return one

    out = alternate(3, {"a": contender("a", 1.0), "b": contender("b", 2.0), "c": contender("c", 3.0)})
    assert order == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert out == {"figure": {"a": [1.0] * 3, "b": [2.0] * 3, "c": [3.0] * 3}}


def test_ratio_is_above_one_when_datamonfs_is_better_whichever_way_the_unit_points():
    speed = Figure("read", "MB/s", higher_is_better=True, samples={OURS: [200, 100, 300],
                                                                    "peer": [100]})
    assert speed.median(OURS) == 200
    assert speed.ratio("peer") == 2.0
    time = Figure("upload", "s", higher_is_better=False, samples={OURS: [4.0], "peer": [2.0]})
    assert time.ratio("peer") == 0.5
    assert time.ratio("absent") is None


def test_report_shows_median_min_max_and_ratios():
    table = Table("1. Ingest", "Save a dataset", [OURS, "peer", "limit"], limit="limit")
    table.figure("seconds", "s", False).samples.update(
        {OURS: [2.0, 3.0, 4.0], "peer": [6.0, 6.0, 6.0], "limit": [1.0, 1.0, 1.0]})
    results = Results({"size": "smoke", "date": "today", "machine": "here", "reps": 3,
                       "conditions": ["caches dropped"], "versions": {"rclone": "1"}},
                      tables=[table])
    text = markdown(results, charts={})
    assert "| seconds | s | 3.00 (2.00–4.00) | 6.00 | 1.00 | 2.00× | 0.33× |" in text
    assert "| 1. Ingest | seconds | 3.00 s | 0.33× | peer 2.00× |" in summary_rows(results)
    again = Results.from_json(results.to_json())
    assert again.tables[0].figures[0].samples == table.figures[0].samples


def test_issue_targets_are_computed_from_the_samples():
    seq = Table("3. Read", "Sequential read of one 16 MiB file",
                [OURS, "rclone", "pyfuse3 memory FS", "local disk"], limit="local disk")
    seq.figure("warm kernel cache", "MB/s", True).samples.update(
        {OURS: [900.0, 960.0, 1000.0], "pyfuse3 memory FS": [1000.0, 1000.0, 1000.0]})
    seq.figure("warm cache, kernel cache dropped", "MB/s", True).samples.update(
        {OURS: [1100.0, 1300.0, 1250.0], "rclone": [1000.0]})
    seq.figure("cold: empty caches", "MB/s", True).samples.update({OURS: [500.0]})
    results = Results({}, tables=[seq])
    rows = goals.markdown(results)
    assert ("| warm kernel cache / the pyfuse3 memory FS | 0.85× (1 MiB readv, median of 5) "
            "| ≥ 0.95× pyfuse3 memory FS | 0.96× | met |") in rows
    assert ("| warm block cache, kernel cache dropped | 715 MB/s | ≥ 1,200 MB/s | 1,250 MB/s "
            "| met |") in rows
    assert ("| warm block cache, kernel cache dropped, vs rclone | 0.90× | ≥ 1.50× rclone "
            "| 1.25× | **missed** |") in rows
    # a column that did not run, and a scenario that did not run
    assert "| cold sequential read vs rclone | 1.32× | ≥ 2.00× rclone | – | – |" in rows
    assert any(r.startswith("| untar of small files") and "| not run | – |" in r for r in rows)
    assert len(rows) == 2 + len(goals.GOALS)
