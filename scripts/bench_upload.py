#!/usr/bin/env python3
"""Scenario 5's upload of 10,000 small files beside `cp -r` of them, alternating, without
dropping the kernel's caches (others may be measuring on the machine).

    .venv/bin/python scripts/bench_upload.py --reps 5 --cold
    .venv/bin/python scripts/bench_upload.py --reps 5 --cold --before /tmp/old-checkout

The tree is made once (bench/work/upload/small, the suite's seed and sizes). Each upload
goes into an empty store and each copy into a fresh directory; both end with `sync`.
--cold evicts the source's pages before every run (posix_fadvise DONTNEED on its files
only: what drop_caches does to them, not to the rest of the machine). --before DIR also
runs the datamonfs package found in DIR (a checkout of another commit), in the same loop.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchsuite import data  # noqa: E402
from benchsuite.common import REPO_ROOT, Datamonfs, run, timed  # noqa: E402

WORK = os.path.join(REPO_ROOT, "bench", "work", "upload")
SOURCE = os.path.join(WORK, "small")


def evict(root: str) -> None:
    for directory, _, names in os.walk(root):
        for name in names:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def upload(n: int, package: str | None, cold: bool) -> float:
    env = dict(os.environ, PYTHONPATH=package) if package else None
    dm = Datamonfs(os.path.join(WORK, f"dm{n}"), env=env)
    dm("repo", "create", "small")
    subprocess.run(["sync"], check=True)
    if cold:
        evict(SOURCE)
    seconds = dm.run("bundle", "upload", "small", SOURCE, "-m", "scale").seconds + timed(["sync"])
    shutil.rmtree(dm.work)
    return seconds


def copy(cold: bool) -> float:
    dest = os.path.join(WORK, "cp")
    subprocess.run(["sync"], check=True)
    if cold:
        evict(SOURCE)
    seconds = run(["cp", "-r", SOURCE, dest]).seconds + timed(["sync"])
    shutil.rmtree(dest)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--cold", action="store_true")
    parser.add_argument("--before", metavar="DIR")
    args = parser.parse_args()
    if not os.path.isdir(SOURCE):
        data.small_files(SOURCE, 10_000, random.Random(13), per_dir=1000)
    tools = {"datamonfs": lambda n: upload(n, None, args.cold), "cp -r": lambda n: copy(args.cold)}
    if args.before:
        tools["before"] = lambda n: upload(n, args.before, args.cold)
    samples: dict[str, list[float]] = {name: [] for name in tools}
    names = list(tools)
    for rep in range(args.reps):
        for name in names[rep % len(names):] + names[:rep % len(names)]:  # rotate who goes first
            samples[name].append(tools[name](rep))
        print(rep, {k: round(v[-1], 2) for k, v in samples.items()}, flush=True)
    cp = statistics.median(samples["cp -r"])
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name}: median {median:.2f} s (min {min(values):.2f}, max {max(values):.2f}); "
              f"{cp / median:.2f}x cp -r")


if __name__ == "__main__":
    main()
