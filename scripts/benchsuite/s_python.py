"""7. Python and pandas: a Parquet file read with pandas through datamon:// (fsspec), beside
the same file on local disk (the limit) and through a datamonfs FUSE mount; one column of
it (seconds, and bytes fetched from the store against the file's size); and new_bundle
writing many small files beside `bundle upload` of the same folder (and `cp -r`, the
limit). Every pandas read runs in a process of its own, timed around the read alone."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time

from . import data
from .common import MiB, Datamonfs, drop_caches, scratch, timed
from .measure import OURS, Table, Target, alternate
from .sizes import Size

SCENARIO = "7. Python and pandas"
LOCAL, MOUNT = "local disk", "FUSE mount"
COLUMNS = 16
READS = ["whole file, cold", "whole file, warm", "one column of 16, cold"]

# Runs in a fresh interpreter: the read alone is timed; what it fetched is the block
# cache's counter (datamon:// and the mount share the user's cache) or, for a plain file,
# the bytes its reads returned (/proc/self/io rchar).
_READ = """
import json, os, sys, time
import pandas as pd
url, column = sys.argv[1], sys.argv[2] or None

def rchar():
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar")).split()[1])

from datamonfs.cache import open_cache
from datamonfs.core import config
blocks = open_cache(config.load())[0]
fetched, read = blocks.stats()["bytes_fetched"], rchar()
start = time.perf_counter()
df = pd.read_parquet(url, columns=[column] if column else None)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "rows": len(df), "columns": len(df.columns),
                  "fetched": blocks.stats()["bytes_fetched"] - fetched,
                  "read": rchar() - read}))
"""

# new_bundle of every file of a folder, one put_file each, as a script would (timed as a
# whole process, interpreter start and imports included, as the CLI is).
_WRITE = """
import os, sys
import datamonfs
root = sys.argv[1]
store = datamonfs.open()
with store.repo("small").new_bundle(message="new_bundle") as nb:
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            nb.put_file(path, os.path.relpath(path, root))
assert nb.created and nb.bundle.files == int(sys.argv[2])
"""


def write_parquet(path: str, size: int, seed: int = 11) -> int:
    """COLUMNS float64 columns of random values, row groups of about 64 MiB, no
    compression (random values do not compress): about `size` bytes. Returns the rows."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    group_rows = max(64 * MiB // (8 * COLUMNS), 1)
    rows = max(size // (8 * COLUMNS), 1)
    schema = pa.schema([(f"c{i:02}", pa.float64()) for i in range(COLUMNS)])
    with pq.ParquetWriter(path, schema, compression="none") as writer:
        for start in range(0, rows, group_rows):
            n = min(group_rows, rows - start)
            writer.write_table(pa.table({f"c{i:02}": rng.random(n) for i in range(COLUMNS)},
                                        schema=schema))
    return rows


class Reader:
    """One way to reach the file; fresh() empties every cache in its way."""

    def __init__(self, name: str, url: str, dm: Datamonfs, fresh):
        self.name, self.url, self.dm, self._fresh = name, url, dm, fresh

    def read(self, column: str = "") -> dict:
        out = subprocess.run([sys.executable, "-c", _READ, self.url, column], env=self.dm.env,
                             capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(f"pandas read of {self.url} failed:\n{out.stderr[-2000:]}")
        return json.loads(out.stdout)

    def measure(self, rows: int, size: int) -> dict[str, float]:
        self._fresh()
        cold = self.read()
        warm = self.read()
        self._fresh()
        one = self.read("c03")
        if (cold["rows"], cold["columns"], one["columns"]) != (rows, COLUMNS, 1):
            raise SystemExit(f"{self.name} read the wrong table: {cold} {one}")
        moved = one["read"] if self.name == LOCAL else one["fetched"]
        return {READS[0]: cold["seconds"], READS[1]: warm["seconds"], READS[2]: one["seconds"],
                "one column: bytes fetched": 100 * moved / size}


def run_scenario(size: Size, reps: int) -> tuple[list[Table], list, list[Target]]:
    work = scratch("python")
    plain = os.path.join(work, "plain")
    os.makedirs(plain)
    parquet = os.path.join(plain, "table.parquet")
    rows = write_parquet(parquet, size.parquet_file)
    file_size = os.path.getsize(parquet)

    dm = Datamonfs(work)
    dm("repo", "create", "tables")
    dm("bundle", "upload", "tables", plain, "-m", "one Parquet file", "--label", "v1")

    def fresh_cache() -> None:
        dm.clear_cache()
        drop_caches()

    mount = {}

    def fresh_mount() -> None:
        if mount:
            dm.unmount(mount.pop("mp"))
        dm.clear_cache()
        mount["mp"] = dm.mount("tables:v1", "m-tables")
        drop_caches()

    readers = [Reader(OURS, "datamon://tables@v1/table.parquet", dm, fresh_cache),
               Reader(LOCAL, parquet, dm, drop_caches),
               Reader(MOUNT, os.path.join(work, "m-tables", "table.parquet"), dm, fresh_mount)]
    try:
        measured = alternate(reps, {r.name: (lambda r=r: r.measure(rows, file_size))
                                    for r in readers})
    finally:
        dm.close()

    writes = measure_writes(work, dm, size, reps)
    shutil.rmtree(work)

    mib = file_size / MiB
    reads = Table(SCENARIO, f"pandas.read_parquet of a {mib:,.0f} MiB file ({COLUMNS} float64 "
                            f"columns, {rows:,} rows)", [OURS, MOUNT, LOCAL], limit=LOCAL)
    for name in READS:
        reads.figure(name, "s", False).samples.update(measured[name])
    reads.notes += [
        f"{OURS}: `pandas.read_parquet('datamon://tables@v1/table.parquet')` (fsspec); "
        f"{MOUNT}: the same bundle mounted read-only, read as a local path; {LOCAL}: the "
        "file itself. Each read runs in a fresh interpreter and only the read is timed.",
        "cold: block cache cleared (the mount remounted over it) and kernel caches dropped; "
        "warm: read again at once.",
    ]
    fetched = Table(SCENARIO, "One column of 16: bytes fetched, as a share of the file",
                    [OURS, MOUNT, LOCAL], limit=LOCAL)
    fetched.figure("bytes fetched for one column", "%", False).samples.update(
        measured["one column: bytes fetched"])
    fetched.notes.append("datamonfs: bytes the block cache fetched from the store (whole "
                         "chunks of about 1.25 MiB); local disk: bytes its reads returned. "
                         "One column is 1/16 = 6.25% of the data.")
    table_w = Table(SCENARIO, f"Write {size.sdk_files:,} small files as a bundle: "
                              "new_bundle (datamonfs) vs bundle upload",
                    [OURS, "bundle upload", "cp -r"], limit="cp -r")
    for name, unit, higher in (("seconds", "s", False), ("files/s", "files/s", True)):
        table_w.figure(name, unit, higher).samples.update(writes[name])
    table_w.notes.append("datamonfs: new_bundle, one `put_file` per file in a `with repo.new_bundle()` "
                         "block (a Python process, timed whole as the CLI is); "
                         "bundle upload: the CLI on the same folder; each into an empty store; "
                         "cp -r: the folder copied on the same disk. Kernel caches dropped "
                         "before each.")

    one = fetched.figures[0]
    whole = reads.figures[0]
    targets = [
        Target("one column of 16 fetches ≤ 15% of the file", "≤ 15%",
               f"{one.median(OURS):.1f}%", one.median(OURS) <= 15),
        Target("cold whole-file read through datamon:// ≤ 2× local disk", "≥ 0.50×",
               f"{whole.ratio(LOCAL):.2f}×", (whole.ratio(LOCAL) or 0) >= 0.5),
        Target("new_bundle of small files ≥ 0.8× bundle upload", "≥ 0.80×",
               f"{table_w.figures[0].ratio('bundle upload'):.2f}×",
               (table_w.figures[0].ratio("bundle upload") or 0) >= 0.8),
    ]
    return [reads, fetched, table_w], [], targets


def measure_writes(work: str, dm: Datamonfs, size: Size, reps: int) -> dict:
    folder = os.path.join(work, "small")
    data.small_files(folder, size.sdk_files, random.Random(3), per_dir=1000)
    runs = {"n": 0}

    def fresh_store() -> dict:
        """A store of its own for each run: the second upload of the same bytes would
        find every chunk there already."""
        runs["n"] += 1
        env = dict(dm.env, DATAMONFS_STORE="file://" + os.path.join(work, f"store-{runs['n']}"))
        subprocess.run([dm_bin(), "repo", "create", "small"], env=env, check=True,
                       capture_output=True)
        drop_caches()
        return env

    def new_bundle() -> dict[str, float]:
        env = fresh_store()
        return _rate(timed([sys.executable, "-c", _WRITE, folder, str(size.sdk_files)],
                           env=env), size.sdk_files)

    def upload() -> dict[str, float]:
        env = fresh_store()
        return _rate(timed([dm_bin(), "bundle", "upload", "small", folder, "-m", "upload"],
                           env=env), size.sdk_files)

    def copy() -> dict[str, float]:
        target = os.path.join(work, "copy")
        shutil.rmtree(target, ignore_errors=True)
        drop_caches()
        start = time.perf_counter()
        subprocess.run(["cp", "-r", folder, target], check=True)
        subprocess.run(["sync"], check=True)
        return _rate(time.perf_counter() - start, size.sdk_files)

    measured = alternate(reps, {"new_bundle": new_bundle, "bundle upload": upload,
                                "cp -r": copy})
    # new_bundle is the table's datamonfs column
    return {name: {(OURS if k == "new_bundle" else k): v for k, v in by.items()}
            for name, by in measured.items()}


def dm_bin() -> str:
    return os.path.join(os.path.dirname(sys.executable), "datamonfs")


def _rate(seconds: float, files: int) -> dict[str, float]:
    return {"seconds": seconds, "files/s": files / seconds}
