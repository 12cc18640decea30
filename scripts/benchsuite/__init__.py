"""The datamonfs benchmark suite: every scenario side by side with the physical limit and
with peers, in one run, written up as bench/results/REPORT.md, charts and JSON.

Run it with `make bench [SIZE=large]` or `scripts/bench.py --help`.
"""
