#!/usr/bin/env python3
"""Where a mount's time goes: py-spy profiles of the mount worker while it serves the
reads and writes whose targets the benchmark report marks missed (with --fio only the fio
jobs of scenario 6 on a writable mount, with --walk only the `find` + stat walks of
scenario 3).

For each workload it prints the wall time, the worker's CPU time over that wall time
(low: the time is spent outside the worker, in the kernel's FUSE path or waiting on the
store), and the functions the worker's samples were in most (self time, then the datamonfs
frames that were on the stack); the raw stacks go to bench/results/profiles/ (collapsed
format: speedscope or flamegraph.pl draw them).

    scripts/profile_mount.py [--size 512] [--files 5000] [--fio | --walk]   (root; py-spy from .[bench])
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchsuite import data, s_fio  # noqa: E402
from benchsuite.common import (MiB, REPO_ROOT, Datamonfs, drop_caches, scratch,  # noqa: E402
                               timed, walk)
from benchsuite.s_read import random_reads  # noqa: E402
from benchsuite.sizes import SIZES  # noqa: E402

OUT = os.path.join(REPO_ROOT, "bench", "results", "profiles")
PY_SPY = os.path.join(os.path.dirname(sys.executable), "py-spy")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its threads so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_pid(dm: Datamonfs, mountpoint: str) -> int:
    import json
    return next(r["worker_pid"] for r in json.loads(dm("mounts", "--json"))
                if r["mountpoint"] == mountpoint)


def profile(name: str, pid: int, workload) -> None:
    raw = os.path.join(OUT, f"{name}.txt")
    proc = subprocess.Popen([PY_SPY, "record", "--pid", str(pid), "--rate", "250", "--format",
                             "raw", "--output", raw, "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # py-spy attaches
    cpu = cpu_seconds(pid)
    wall = workload()
    cpu = cpu_seconds(pid) - cpu
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    if not os.path.exists(raw):
        raise SystemExit(f"py-spy wrote no profile: {err.strip()[-500:]}")
    print(f"\n## {name}: {wall:.2f} s wall, worker CPU {cpu:.2f} s ({cpu / wall:.0%} of wall)")
    summarize(raw)


def summarize(raw: str, top: int = 10) -> None:
    leaves: collections.Counter = collections.Counter()
    ours: collections.Counter = collections.Counter()
    total = 0
    with open(raw) as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            n = int(count)
            frames = stack.split(";")
            total += n
            leaves[frames[-1]] += n
            for frame in set(frames):
                if "datamonfs/" in frame:
                    ours[frame] += n
    if not total:
        print("no samples: the worker was idle")
        return
    print(f"{total} active samples. Self time:")
    for frame, n in leaves.most_common(top):
        print(f"  {n / total:6.1%}  {frame}")
    print("datamonfs frames on the stack (inclusive):")
    for frame, n in ours.most_common(top):
        print(f"  {n / total:6.1%}  {frame}")


def regions(path: str, size: int, readers: int) -> float:
    """Seconds for `readers` threads to read a region of the file each, 1 MiB at a time."""
    from concurrent.futures import ThreadPoolExecutor

    def read(i: int) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            for off in range(i * size // readers, (i + 1) * size // readers, MiB):
                os.pread(fd, MiB, off)
        finally:
            os.close(fd)

    start = time.perf_counter()
    with ThreadPoolExecutor(readers) as pool:
        list(pool.map(read, range(readers)))
    return time.perf_counter() - start


def fio_profiles(dm: Datamonfs) -> None:
    """Scenario 6's fio jobs (default size) on a new writable mount, one profile each."""
    dm("repo", "create", "prof")
    rw = dm.mount("prof", "m-fio", "--rw", "--new", "--branch", "fio")
    directory = os.path.join(rw, "fio")
    os.makedirs(directory)
    pid = worker_pid(dm, rw)
    for figure, (name, args, kinds) in s_fio.job_args(SIZES["default"]).items():
        def run(name=name, args=args, kinds=kinds, figure=figure) -> float:
            start = time.perf_counter()
            speed = s_fio.mib_per_s(s_fio.fio(directory, name, *args), *kinds)
            print(f"\nfio {figure}: {speed:.0f} MiB/s")
            return time.perf_counter() - start
        profile("fio-" + name + ("-read" if "--rw=read" in args else ""), pid, run)


def walk_profiles(dm: Datamonfs, work: str, args) -> None:
    """Scenario 3's `find` + stat of small files in directories of 1,000: the first walk
    over an empty cache with the kernel caches dropped, then the second."""
    tree = os.path.join(work, "tree")
    data.small_files(tree, args.files, random.Random(5), per_dir=1000)
    dm("repo", "create", "prof")
    dm("bundle", "upload", "prof", tree, "-m", "tree", "--label", "v1")
    dm.clear_cache()
    mp = dm.mount("prof:v1", "m-tree")
    pid = worker_pid(dm, mp)
    for name in ("walk-cold", "walk-second"):
        if name == "walk-cold":
            drop_caches()
        profile(name, pid, lambda: args.files / walk(mp, args.files))


def mount_profiles(dm: Datamonfs, work: str, args) -> None:
    """Reads through a read-only mount (cold, warm, random, parallel) and an untar into a
    writable one."""
    src = os.path.join(work, "src")
    os.makedirs(src)
    data.write_random(os.path.join(src, "big.bin"), args.size * MiB, random.Random(1))
    dm("repo", "create", "prof")
    dm("bundle", "upload", "prof", src, "-m", "big", "--label", "v1")
    mp = dm.mount("prof:v1", "m-ro")
    pid = worker_pid(dm, mp)
    big = os.path.join(mp, "big.bin")
    cat = lambda: timed(["cat", big])  # noqa: E731
    dm.clear_cache()
    drop_caches()
    profile("read-cold", pid, cat)
    drop_caches()
    profile("read-warm-block-cache", pid, cat)
    profile("read-warm-kernel-cache", pid, cat)
    drop_caches()
    size = args.size * MiB
    profile("random-4k-warm-block-cache", pid, lambda: 2000 / random_reads(big, size, 4096, 2000, 1))
    dm.clear_cache()
    drop_caches()
    profile("read-16-readers-cold", pid, lambda: regions(big, size, 16))

    archive = os.path.join(work, "files.tar")
    data.tar_of_small_files(archive, args.files)
    rw = dm.mount("prof", "m-rw", "--rw", "--new", "--branch", "scratch")
    profile("untar", worker_pid(dm, rw), lambda: timed(["tar", "xf", archive, "-C", rw]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512, help="MiB of the file read (default 512)")
    ap.add_argument("--files", type=int, default=5000, help="files untarred (default 5000)")
    ap.add_argument("--fio", action="store_true", help="only the fio jobs of scenario 6")
    ap.add_argument("--walk", action="store_true",
                    help="only the find + stat walks of scenario 3 (--files small files)")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    work = scratch("profile")
    dm = Datamonfs(work)
    try:
        if args.fio:
            fio_profiles(dm)
        elif args.walk:
            walk_profiles(dm, work, args)
        else:
            mount_profiles(dm, work, args)
    finally:
        dm.close()
    print(f"\nraw stacks (collapsed, for flamegraph.pl or speedscope): {os.path.relpath(OUT)}")


if __name__ == "__main__":
    main()
