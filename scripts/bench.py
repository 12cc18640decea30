#!/usr/bin/env python3
"""The datamonfs benchmark suite: every scenario beside the physical limit and peers.

Runs the scenarios in order (1 ingest, 2 versions, 3 read, 4 write, 5 scale, 6 fio), each tool
alternating with the others over --reps repetitions, and writes bench/results/: REPORT.md
(tables, targets, charts), one PNG chart per table and results.json (every sample).
`make bench` runs it with the peers installed; SIZE=large is ten times bigger.

    scripts/bench.py [--size default|large|smoke] [--reps 3] [--only 1,3] [--report-only]
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import os
import platform
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchsuite import report, s_fio, s_ingest, s_read, s_scale, s_versions, s_write  # noqa: E402
from benchsuite.common import REPO_ROOT, can_drop_caches  # noqa: E402
from benchsuite.measure import Results  # noqa: E402
from benchsuite.sizes import SIZES  # noqa: E402

SCENARIOS = {"1": s_ingest, "2": s_versions, "3": s_read, "4": s_write, "5": s_scale,
             "6": s_fio}
OUT = os.path.join(REPO_ROOT, "bench", "results")


def version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text and out.returncode == 0 else "not installed"


def peer_version(command: str, module: str) -> str:
    """The version of a Python peer, asked of the interpreter of its own virtualenv."""
    path = shutil.which(command)
    if not path:
        return "not installed"
    python = os.path.join(os.path.dirname(path), "python")
    return version([python, "-c", f"import {module}; print({module}.__version__)"])


def machine() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return (f"{os.cpu_count()} × {cpu}, {mem_kib / 2**20:.0f} GiB RAM, Linux "
            f"{platform.release()}, Python {platform.python_version()}")


def meta(size: str, reps: int) -> dict:
    git = subprocess.run(["git", "-C", REPO_ROOT, "describe", "--always", "--dirty"],
                         capture_output=True, text=True).stdout.strip()
    conditions = []
    if not can_drop_caches():
        conditions.append("**Kernel caches could not be dropped** (not root): the 'cold' "
                          "figures ran with whatever the page cache held.")
    else:
        conditions.append("Kernel caches were dropped (`echo 3 > /proc/sys/vm/drop_caches`, "
                          "after `sync`) before every cold measurement.")
    return {
        "size": size, "reps": reps, "machine": machine(),
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "conditions": conditions,
        "versions": {"datamonfs": git or "unknown",
                     "rclone": version(["rclone", "version"]).removeprefix("rclone "),
                     "s3fs": version(["s3fs", "--version"]).split(" (")[0].removeprefix(
                         "Amazon Simple Storage Service File System "),
                     "DVC": version(["dvc", "--version"]),
                     "moto": peer_version("moto_server", "moto")},
    }


def hold_work_dir() -> None:
    """Two runs at once would empty each other's scratch directories (and time each
    other): the second one stops here. The lock goes with the process."""
    work = os.path.join(REPO_ROOT, "bench", "work")
    os.makedirs(work, exist_ok=True)
    fd = os.open(os.path.join(work, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit("another benchmark run is using bench/work; wait for it to finish") from None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=list(SIZES), default="default")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of each comparison")
    ap.add_argument("--only", default=",".join(SCENARIOS),
                    help="comma-separated scenario numbers (default: all)")
    ap.add_argument("--out", default=OUT, help="where REPORT.md, charts and JSON go")
    ap.add_argument("--report-only", action="store_true",
                    help="rebuild REPORT.md and the charts from results.json")
    args = ap.parse_args()
    if args.report_only:
        print(report.write(report.load(args.out), args.out))
        return
    hold_work_dir()
    size = SIZES[args.size]
    results = Results(meta(size.name, args.reps))
    started = time.monotonic()
    for key in args.only.split(","):
        module = SCENARIOS[key.strip()]
        print(f"== {module.SCENARIO} ({size.name} size)", flush=True)
        t = time.monotonic()
        tables, series, targets = module.run_scenario(size, args.reps)
        results.tables += tables
        results.series += series
        results.targets += targets
        print(f"   {time.monotonic() - t:.0f} s", flush=True)
        report.write(results, args.out)  # partial results survive a later failure
    results.meta["minutes"] = round((time.monotonic() - started) / 60, 1)
    path = report.write(results, args.out)
    print(f"report: {os.path.relpath(path)} ({results.meta['minutes']} min)")


if __name__ == "__main__":
    main()
