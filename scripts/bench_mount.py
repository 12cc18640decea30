#!/usr/bin/env python3
"""Mount benchmark: datamonfs beside the physical limit and rclone, in one run.

1. Sequential read of one large file (default 512 MiB, --size MiB) with `cat`:
   datamonfs cold (empty block cache, local store, kernel caches dropped), warm
   block cache (kernel caches dropped), warm kernel cache; beside `cat` of the
   same bytes from a plain local file and `rclone mount --vfs-cache-mode full`
   over them in a local directory, in the same cache states.
2. `find -type f` with a stat of every file (find -printf '%s') in a bundle of
   --files small files (default 20,000): files/s beside local disk and rclone.
3. Mount-to-first-`ls` time and daemon RSS (supervisor and mount worker, peak)
   after walking every file of a generated bundle of 200,000 files (--million:
   1,000,000).

Ratios are datamonfs over the peer (throughput: above 1 means datamonfs is faster).
Kernel caches are dropped through /proc/sys/vm/drop_caches (root only).

    scripts/bench_mount.py [--size 512] [--files 20000] [--million] [--no-rclone]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib import DATAMONFS, drop_caches, isolated_env, scratch, table  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MAKE_BUNDLE = os.path.join(HERE, "make_million_bundle.py")


class Bench:
    def __init__(self, work: str):
        self.work = work
        self.env = isolated_env(os.path.join(work, "home"), "file://" + os.path.join(work, "store"))
        self.env["DATAMONFS_SOCKET"] = os.path.join(work, "home", "run", "d.sock")
        self.rclone: list[tuple[subprocess.Popen, str]] = []
        self.mounted: list[str] = []
        self.can_drop = drop_caches()
        if not self.can_drop:
            print("warning: cannot drop kernel caches (not root): 'cold' rows are not cold",
                  file=sys.stderr)

    def dm(self, *args: str, env: dict | None = None) -> str:
        proc = subprocess.run([DATAMONFS, *args], env=env or self.env, capture_output=True,
                              text=True)
        if proc.returncode:
            raise SystemExit(f"datamonfs {' '.join(args)} failed: {proc.stderr}")
        return proc.stdout.strip()

    def mount(self, ref: str, name: str) -> str:
        mp = os.path.join(self.work, name)
        os.makedirs(mp, exist_ok=True)
        self.dm("mount", ref, mp)
        self.mounted.append(mp)
        return mp

    def rclone_mount(self, source: str, name: str) -> str:
        mp = os.path.join(self.work, name)
        os.makedirs(mp, exist_ok=True)
        conf = os.path.join(self.work, "rclone.conf")
        with open(conf, "w") as f:
            f.write("[local]\ntype = local\n")
        cache = os.path.join(self.work, f"rclone-cache-{name}")
        proc = subprocess.Popen(
            ["rclone", "mount", f"local:{source}", mp, "--config", conf, "--read-only",
             "--vfs-cache-mode", "full", "--cache-dir", cache],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.rclone.append((proc, mp))
        deadline = time.monotonic() + 30
        while not _mounted(mp):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("rclone mount did not come up")
            time.sleep(0.05)
        return mp

    def cold(self) -> None:
        if self.can_drop:
            drop_caches()

    def close(self) -> None:
        for proc, mp in self.rclone:
            subprocess.run(["fusermount3", "-u", mp], capture_output=True)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if _mounted(mp):
                subprocess.run(["fusermount3", "-u", "-z", mp], capture_output=True)
        subprocess.run([DATAMONFS, "daemon", "stop"], env=self.env, capture_output=True)
        for mp in self.mounted:
            if _mounted(mp):
                subprocess.run(["fusermount3", "-u", "-z", mp], capture_output=True)


def _mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def timed(cmd: str) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def cat_seconds(path: str) -> float:
    return timed(f"cat '{path}' > /dev/null")


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


# -- 1. sequential read ------------------------------------------------------------------------


def sequential(b: Bench, size_mib: int, rclone: bool) -> None:
    src = os.path.join(b.work, "plain")
    os.makedirs(src)
    path = os.path.join(src, "big.bin")
    with open(path, "wb") as f:
        left = size_mib << 20
        while left:
            n = min(left, 16 << 20)
            f.write(os.urandom(n))
            left -= n
    b.dm("repo", "create", "big")
    b.dm("bundle", "upload", "big", src, "-m", "big file", "--label", "v1")
    mb = size_mib * 1.048576

    rows = {}
    b.cold()
    local = [cat_seconds(path)]
    local.append(local[0])  # a plain file has no second cache: cold disk stands for both
    local.append(cat_seconds(path))
    rows["local cat"] = local

    mp = b.mount("big:v1", "m-big")  # the block cache is empty: a fresh XDG cache dir
    f = os.path.join(mp, "big.bin")
    b.cold()
    dm = [cat_seconds(f)]
    b.cold()
    dm.append(cat_seconds(f))
    dm.append(cat_seconds(f))
    rows["datamonfs"] = dm
    if not _same(path, f):
        raise SystemExit("datamonfs served different bytes")

    if rclone:
        rmp = b.rclone_mount(src, "r-big")
        rf = os.path.join(rmp, "big.bin")
        b.cold()
        rc = [cat_seconds(rf)]
        b.cold()
        rc.append(cat_seconds(rf))
        rc.append(cat_seconds(rf))
        rows["rclone full cache"] = rc

    states = ["cold (empty caches)", "warm cache, kernel cache dropped", "warm kernel cache"]
    out = []
    for i, state in enumerate(states):
        row = [state] + [f"{mb / rows[k][i]:.0f}" for k in rows]
        row.append(ratio(rows["local cat"][i], rows["datamonfs"][i]))
        if rclone:
            row.append(ratio(rows["rclone full cache"][i], rows["datamonfs"][i]))
        out.append(row)
    header = ["state"] + [f"{k} MB/s" for k in rows] + ["dm/local"] + (["dm/rclone"] if rclone else [])
    table(f"Sequential read of {size_mib} MiB with cat", header, out)


def _same(a: str, b: str) -> bool:
    return subprocess.run(["cmp", "-s", a, b]).returncode == 0


# -- 2. find + stat ----------------------------------------------------------------------------


def make_files_on_disk(root: str, files: int, per_dir: int) -> None:
    """The same names and contents make_million_bundle.py puts in its bundle."""
    sys.path.insert(0, HERE)
    from make_million_bundle import file_content

    dirs = (files + per_dir - 1) // per_dir
    width = len(str(max(dirs - 1, 0)))
    n = 0
    for d in range(dirs):
        sub = os.path.join(root, f"d{d:0{width}d}")
        os.makedirs(sub)
        for i in range(min(per_dir, files - n)):
            with open(os.path.join(sub, f"f{i:07d}.txt"), "wb") as f:
                f.write(file_content(n))
            n += 1


def walk_seconds(path: str, expect: int) -> float:
    start = time.perf_counter()
    out = subprocess.run(["find", path, "-type", "f", "-printf", "%s\n"], check=True,
                         capture_output=True, text=True).stdout
    seconds = time.perf_counter() - start
    if len(out.splitlines()) != expect:
        raise SystemExit(f"find saw {len(out.splitlines())} files in {path}, expected {expect}")
    return seconds


def walk(b: Bench, files: int, rclone: bool) -> None:
    per_dir = 1000
    disk = os.path.join(b.work, "files")
    make_files_on_disk(disk, files, per_dir)
    subprocess.run([sys.executable, MAKE_BUNDLE, "small", "--files", str(files), "--per-dir",
                    str(per_dir), "--label", "v1"], env=b.env, check=True, capture_output=True)
    targets = {"local disk": disk, "datamonfs": b.mount("small:v1", "m-small")}
    if rclone:
        targets["rclone full cache"] = b.rclone_mount(disk, "r-small")
    rates = {}
    for name, path in targets.items():
        b.cold()
        first = walk_seconds(path, files)
        again = walk_seconds(path, files)
        rates[name] = (files / first, files / again)
    rows = []
    for i, state in enumerate(["first walk, kernel caches dropped", "second walk"]):
        row = [state] + [f"{rates[k][i]:,.0f}" for k in rates]
        row.append(ratio(rates["datamonfs"][i], rates["local disk"][i]))
        if rclone:
            row.append(ratio(rates["datamonfs"][i], rates["rclone full cache"][i]))
        rows.append(row)
    header = ["walk"] + [f"{k} files/s" for k in rates] + ["dm/local"] + (["dm/rclone"] if rclone else [])
    table(f"find -type f + stat of {files:,} files", header, rows)


# -- 3. a huge bundle --------------------------------------------------------------------------


def rss(pid: int) -> tuple[float, float]:
    """(current, peak) resident MiB of a process."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def huge(b: Bench, files: int) -> None:
    start = time.perf_counter()
    subprocess.run([sys.executable, MAKE_BUNDLE, "huge", "--files", str(files), "--label", "v1"],
                   env=b.env, check=True, capture_output=True)
    made = time.perf_counter() - start
    mp = os.path.join(b.work, "m-huge")
    os.makedirs(mp)
    start = time.perf_counter()
    subprocess.run([DATAMONFS, "mount", "huge:v1", mp], env=b.env, check=True, capture_output=True)
    entries = os.listdir(mp)
    first_ls = time.perf_counter() - start
    b.mounted.append(mp)
    import json

    records = json.loads(b.dm("mounts", "--json"))
    worker = next(r["worker_pid"] for r in records if r["mountpoint"] == mp)
    daemon = records[0]["daemon_pid"]
    b.cold()
    seconds = walk_seconds(mp, files)
    w_now, w_peak = rss(worker)
    d_now, d_peak = rss(daemon)
    rows = [
        ["bundle generated (tree objects only)", f"{made:.1f} s"],
        ["mount + first ls of the root", f"{first_ls * 1000:.0f} ms ({len(entries)} entries)"],
        ["find -type f + stat of every file", f"{seconds:.1f} s ({files / seconds:,.0f} files/s)"],
        ["mount worker RSS after the walk (peak)", f"{w_now:.0f} MiB ({w_peak:.0f} MiB)"],
        ["supervisor RSS (peak)", f"{d_now:.0f} MiB ({d_peak:.0f} MiB)"],
        ["daemon total RSS (peak)", f"{w_now + d_now:.0f} MiB ({w_peak + d_peak:.0f} MiB)"],
    ]
    table(f"A bundle of {files:,} files", ["measure", "value"], rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=512, help="MiB of the large file (default 512)")
    p.add_argument("--files", type=int, default=20_000, help="files for the find benchmark")
    p.add_argument("--million", action="store_true", help="1,000,000 files in part 3 (else 200,000)")
    p.add_argument("--huge-files", type=int, default=None, help="files in part 3 (overrides --million)")
    p.add_argument("--no-rclone", action="store_true", help="skip the rclone rows")
    args = p.parse_args()
    rclone = not args.no_rclone and shutil.which("rclone") is not None
    if not rclone and not args.no_rclone:
        print("rclone not found: its rows are skipped (apt-get install rclone)", file=sys.stderr)

    b = Bench(scratch("mount"))
    try:
        b.dm("config", "create", "--name", "Bench", "--email", "bench@example.org")
        sequential(b, args.size, rclone)
        walk(b, args.files, rclone)
        huge(b, args.huge_files or (1_000_000 if args.million else 200_000))
    finally:
        b.close()
        if not any(_mounted(os.path.join(b.work, n)) for n in os.listdir(b.work)):
            shutil.rmtree(b.work, ignore_errors=True)


if __name__ == "__main__":
    main()
