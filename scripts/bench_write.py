#!/usr/bin/env python3
"""Writable-mount benchmark: datamonfs beside local disk, in one run, as ratios.

1. Sequential write of one large file (default 1 GiB, --size MiB) with
   `dd bs=1M conv=fsync`: through `datamonfs mount --rw` beside `dd` to local disk.
2. Untar of an archive of --files small files (default 20,000; 100-8,000 bytes):
   into the mount beside into a local directory, files per second; then the time
   of `datamonfs commit` of the untarred tree.
3. Commit after changing 1% of a dataset (--size MiB in 100 files, uploaded first):
   a. 1% of the files rewritten whole;
   b. 1% of the bytes rewritten in place, in 4 ranges of one file each;
   commit time and bytes uploaded (growth of the local store), beside the bytes
   changed and the dataset. A fresh upload of the dataset is the time reference.

Ratios: datamonfs over local (throughput: 1 = as fast as local disk); uploaded
over changed (1 = only what changed was uploaded; content-defined chunks round a
change up to whole chunks of ~1.25 MiB).

    scripts/bench_write.py [--size 1024] [--files 20000]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import subprocess
import sys
import tarfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib import DATAMONFS, isolated_env, mb, scratch, table  # noqa: E402


def du(path: str) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


class Bench:
    def __init__(self, work: str):
        self.work = work
        self.store = os.path.join(work, "store")
        self.env = isolated_env(os.path.join(work, "home"), "file://" + self.store)
        self.env["DATAMONFS_SOCKET"] = os.path.join(work, "home", "run", "d.sock")
        self.mounted: list[str] = []
        self.dm("config", "create", "--name", "Bench", "--email", "bench@example.org")

    def dm(self, *args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([DATAMONFS, *args], env=self.env, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"datamonfs {' '.join(args)} failed: {proc.stderr}")
        return proc

    def mount_rw(self, ref: str, name: str, new_branch: str | None = None) -> str:
        mp = os.path.join(self.work, name)
        os.makedirs(mp, exist_ok=True)
        if new_branch:
            self.dm("mount", "--rw", "--new", ref, mp, "--branch", new_branch)
        else:
            self.dm("mount", "--rw", ref, mp)
        self.mounted.append(mp)
        return mp

    def commit(self, mp: str, message: str) -> tuple[float, int]:
        """Commit time and bytes the store grew by."""
        before = du(self.store)
        t = time.perf_counter()
        self.dm("commit", mp, "-m", message)
        return time.perf_counter() - t, du(self.store) - before

    def close(self) -> None:
        for mp in reversed(self.mounted):
            subprocess.run([DATAMONFS, "unmount", "--discard", mp], env=self.env,
                           capture_output=True)
        subprocess.run([DATAMONFS, "daemon", "stop"], env=self.env, capture_output=True)


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t


def sequential(b: Bench, size_mib: int) -> list:
    mp = b.mount_rw("bench", "seq", new_branch="seq")
    local = timed(["dd", "if=/dev/zero", f"of={b.work}/local.bin", "bs=1M", f"count={size_mib}",
                   "conv=fsync"])
    ours = timed(["dd", "if=/dev/zero", f"of={mp}/big.bin", "bs=1M", f"count={size_mib}",
                  "conv=fsync"])
    os.unlink(f"{b.work}/local.bin")
    rate = lambda s: f"{mb((size_mib << 20) / s)} MB/s"  # noqa: E731
    return [f"sequential write {size_mib} MiB", rate(ours), rate(local), f"{local / ours:.2f}"]


def untar(b: Bench, files: int) -> tuple[list, list]:
    archive = os.path.join(b.work, "files.tar")
    rng = random.Random(1)
    with tarfile.open(archive, "w") as tf:
        for i in range(files):
            data = rng.randbytes(rng.randrange(100, 8000))
            info = tarfile.TarInfo(f"d{i // 1000:03}/f{i:06}.dat")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    local_dir = os.path.join(b.work, "untar-local")
    os.makedirs(local_dir)
    local = timed(["tar", "xf", archive, "-C", local_dir])
    mp = b.mount_rw("bench", "untar", new_branch="untar")
    ours = timed(["tar", "xf", archive, "-C", mp])
    seconds, grew = b.commit(mp, "untar")
    row = [f"untar {files} files", f"{files / ours:.0f} files/s", f"{files / local:.0f} files/s",
           f"{local / ours:.2f}"]
    return row, [f"commit of {files} new files", f"{seconds:.1f}", f"{mb(grew)}", "-", "-"]


def one_percent(b: Bench, size_mib: int) -> list[list]:
    src = os.path.join(b.work, "dataset")
    os.makedirs(src)
    per_file = (size_mib << 20) // 100
    rng = random.Random(2)
    for i in range(100):
        with open(os.path.join(src, f"part{i:03}.bin"), "wb") as f:
            f.write(rng.randbytes(per_file))
    before = du(b.store)
    t = time.perf_counter()
    b.dm("bundle", "upload", "bench", src, "-m", "dataset", "--branch", "data")
    upload = time.perf_counter() - t
    total = 100 * per_file
    rows = [[f"upload of the dataset ({size_mib} MiB)", f"{upload:.1f}",
             mb(du(b.store) - before), mb(total), "-"]]

    mp = b.mount_rw("bench:data", "pct")
    with open(os.path.join(mp, "part007.bin"), "r+b") as f:  # (a) 1% of the files, whole
        f.write(rng.randbytes(per_file))
    seconds, grew = b.commit(mp, "one file of a hundred")
    rows.append(["1% of files rewritten", f"{seconds:.1f}", mb(grew), mb(per_file),
                 f"{grew / per_file:.2f}"])

    changed = total // 100
    piece = changed // 4
    for k in range(4):  # (b) 1% of the bytes, in place, four ranges
        with open(os.path.join(mp, f"part{20 + 20 * k:03}.bin"), "r+b") as f:
            f.seek(rng.randrange(per_file - piece))
            f.write(rng.randbytes(piece))
    seconds, grew = b.commit(mp, "one percent in place")
    rows.append(["1% of bytes in 4 ranges", f"{seconds:.1f}", mb(grew), mb(changed),
                 f"{grew / changed:.2f}"])
    rows.append(["(commit time / upload time)", f"{seconds / upload:.2f}", "-", "-", "-"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1024, help="MiB for the write and 1%% tests")
    ap.add_argument("--files", type=int, default=20_000, help="files in the archive (to 100,000)")
    args = ap.parse_args()
    b = Bench(scratch("write"))
    try:
        b.dm("repo", "create", "bench")
        speed = [sequential(b, args.size)]
        row, commit_row = untar(b, args.files)
        speed.append(row)
        table("Writable mount beside local disk", ["test", "datamonfs", "local", "ratio"], speed)
        table("Commits cost what changed", ["commit", "seconds", "MB uploaded", "MB changed",
                                           "uploaded/changed"],
              [commit_row] + one_percent(b, args.size))
    finally:
        b.close()


if __name__ == "__main__":
    main()
