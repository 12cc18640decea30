"""5. Scale: mount-to-first-`ls` and daemon RSS for a generated bundle of many files;
peak RSS and time of upload and download of many small files and of one large file,
beside `cp -r` of the same bytes (the limit)."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time

from . import data
from .common import REPO_ROOT, Datamonfs, drop_caches, rss_mib, run, scratch, timed, walk
from .measure import OURS, Table, Target, alternate
from .sizes import Size

SCENARIO = "5. Scale"
MAKE_BUNDLE = os.path.join(REPO_ROOT, "scripts", "make_million_bundle.py")
RSS_LIMIT_MB = 300      # upload and download
DAEMON_RSS_LIMIT_MB = 500
FIRST_LS_LIMIT_MS = 1000


def run_scenario(size: Size, reps: int) -> tuple[list[Table], list, list[Target]]:
    work = scratch("scale")
    dm = Datamonfs(work)
    try:
        bundle_table, targets = huge_bundle(dm, size, reps)
        transfer_table, more = transfers(work, size, reps)
    finally:
        dm.close()
    shutil.rmtree(work)
    return [bundle_table, transfer_table], [], targets + more


def huge_bundle(dm: Datamonfs, size: Size, reps: int) -> tuple[Table, list[Target]]:
    files = size.bundle_files
    start = time.perf_counter()
    subprocess.run([sys.executable, MAKE_BUNDLE, "huge", "--files", str(files), "--label", "v1"],
                   env=dm.env, check=True, capture_output=True)
    made = time.perf_counter() - start
    dm("daemon", "start")  # measure the mount, not the daemon's start
    first_ls = []
    for rep in range(reps):  # cold each time: no mount, empty block cache, kernel caches dropped
        dm.clear_cache()
        drop_caches()
        start = time.perf_counter()
        mp = dm.mount("huge:v1", "m-huge")
        entries = len(os.listdir(mp))
        first_ls.append((time.perf_counter() - start) * 1000)
        if rep < reps - 1:
            dm.unmount(mp)
    drop_caches()
    walk_rate = walk(mp, files)
    pids = dm.daemon_pids()
    peak = sum(rss_mib(pid)[1] for pid in pids) * 1.048576  # MiB -> MB
    now = sum(rss_mib(pid)[0] for pid in pids) * 1.048576
    dm.unmount(mp)

    table = Table(SCENARIO, f"A generated bundle of {files:,} files", [OURS])
    table.figure("mount + first ls of the root", "ms", False,
                 note=f"{entries} entries").samples[OURS] = first_ls
    table.figure("find + stat of every file", "files/s", True).samples[OURS] = [walk_rate]
    table.figure("daemon RSS after the walk, peak", "MB", False).samples[OURS] = [peak]
    table.figure("daemon RSS after the walk, now", "MB", False).samples[OURS] = [now]
    table.notes.append(
        f"The bundle's trees were written directly by scripts/make_million_bundle.py in "
        f"{made:.0f} s (files share a few chunks). Daemon RSS is the supervisor plus the "
        f"mount worker ({len(pids)} processes), read from /proc after `find` walked every file.")
    targets = [
        Target(f"first ls of a {files:,}-file bundle < 1 s", f"< {FIRST_LS_LIMIT_MS} ms",
               f"{sorted(first_ls)[len(first_ls) // 2]:.0f} ms",
               max(first_ls) < FIRST_LS_LIMIT_MS),
        Target(f"daemon RSS walking {files:,} files < 500 MB", f"< {DAEMON_RSS_LIMIT_MB} MB",
               f"{peak:.0f} MB", peak < DAEMON_RSS_LIMIT_MB),
    ]
    return table, targets


def transfers(work: str, size: Size, reps: int) -> tuple[Table, list[Target]]:
    rng = random.Random(13)
    small = os.path.join(work, "small")
    data.small_files(small, size.scale_small, rng, per_dir=1000)
    large = os.path.join(work, "large")
    os.makedirs(large)
    data.write_random(os.path.join(large, "one.bin"), size.scale_large, rng)
    cases = {f"{size.scale_small:,} small files": small,
             f"one {size.scale_large >> 20:,} MiB file": large}
    attempt = iter(range(10_000))

    def ours() -> dict[str, float]:
        dm = Datamonfs(os.path.join(work, f"dm{next(attempt)}"))  # an empty store each time
        out = {}
        for repo, (name, source) in zip(("small", "large"), cases.items()):
            dm("repo", "create", repo)
            drop_caches()
            up = dm.run("bundle", "upload", repo, source, "-m", "scale")
            up_sync = timed(["sync"])
            dest = os.path.join(dm.work, "download")
            dm.clear_cache()
            drop_caches()
            down = dm.run("bundle", "download", repo, dest)
            down_sync = timed(["sync"])
            shutil.rmtree(dest)
            out |= {f"{name}: upload": up.seconds + up_sync,
                    f"{name}: download": down.seconds + down_sync,
                    f"{name}: upload peak RSS": up.peak_rss_mb,
                    f"{name}: download peak RSS": down.peak_rss_mb}
        shutil.rmtree(dm.work)
        return out

    def copy() -> dict[str, float]:
        out = {}
        for name, source in cases.items():
            dest = os.path.join(work, "cp")
            drop_caches()
            cp = run(["cp", "-r", source, dest])
            seconds = cp.seconds + timed(["sync"])
            shutil.rmtree(dest)
            out |= {f"{name}: upload": seconds, f"{name}: download": seconds}
        return out

    measured = alternate(reps, {OURS: ours, "cp -r": copy})
    table = Table(SCENARIO, "Upload and download at scale (local store)", [OURS, "cp -r"],
                  limit="cp -r")
    for name, samples in measured.items():
        rss = name.endswith("RSS")
        table.figure(name, "MB" if rss else "s", False).samples.update(samples)
    table.notes.append(
        "Each upload goes into an empty store, each download starts from an empty block "
        "cache, with kernel caches dropped; times end with `sync`. `cp -r` of the same bytes "
        "stands for both directions (its peak RSS, ~10 MB, is not a meaningful limit).")
    targets = []
    small = f"{size.scale_small:,} small files"
    for fig in table.figures:
        goal = {f"{small}: upload": 0.8, f"{small}: download": 0.6}.get(fig.name)
        if goal:
            r = fig.ratio("cp -r") or 0
            targets.append(Target(f"{fig.name} ≥ {goal}× cp -r", f"≥ {goal:.2f}×", f"{r:.2f}×",
                                  r >= goal))
        if fig.unit == "MB":
            peak = max(fig.samples[OURS])
            targets.append(Target(f"{fig.name} < {RSS_LIMIT_MB} MB", f"< {RSS_LIMIT_MB} MB",
                                  f"{peak:.0f} MB", peak < RSS_LIMIT_MB))
    return table, targets
