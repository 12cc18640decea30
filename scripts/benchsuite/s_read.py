"""3. Read through the mount: sequential reads in three cache states, random 4 KiB and
1 MiB reads, parallel readers (1, 4, 16) and `find` + stat of a tree of small files;
datamonfs (local store) beside the same bytes on local disk (the limit), a minimal pyfuse3
file system holding them in memory (memfs.py: what FUSE itself costs), `rclone mount
--vfs-cache-mode full` over them, and s3fs over a local S3 endpoint holding them."""

from __future__ import annotations

import os
import random
import shutil
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from . import data
from .common import MiB, Datamonfs, drop_caches, scratch, tree_bytes, walk
from .measure import OURS, Table, Target, alternate
from .peers import S3, FuseProcess, Rclone, missing
from .sizes import Size

SCENARIO = "3. Read through the mount"
LOCAL, RCLONE, S3FS = "local disk", "rclone", "s3fs"
MEMFS = "pyfuse3 memory FS"
PARALLEL = (1, 4, 16)
S3FS_TREE = 2_000  # s3fs walks at a few hundred files/s (a HEAD per file): it gets a part
# A read from the kernel's page cache takes a few tens of ms: one pass is noise (single
# passes gave 0.34× and 0.70× of the plain file in two runs), the median of several is not.
KERNEL_CACHE_PASSES = 5
MEMFS_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "memfs.py")


class Local:
    name = LOCAL

    def __init__(self, plain: str):
        self.plain = plain

    def fresh(self) -> None:
        drop_caches()

    def path(self, kind: str, rel: str = "") -> str:
        return os.path.join(self.plain, kind, rel)

    def close(self) -> None:
        pass


class DatamonfsReader(Local):
    """A read-only mount of each bundle; fresh() remounts them over an empty block cache."""
    name = OURS

    def __init__(self, dm: Datamonfs):
        self.dm = dm
        self.mounts: dict[str, str] = {}
        self.fresh()

    def fresh(self) -> None:
        for mp in self.mounts.values():
            self.dm.unmount(mp)
        self.dm.clear_cache()
        self.mounts = {kind: self.dm.mount(f"{kind}:v1", f"m-{kind}") for kind in ("data", "tree")}
        drop_caches()

    def path(self, kind: str, rel: str = "") -> str:
        return os.path.join(self.mounts[kind], rel)

    def close(self) -> None:
        self.dm.close()


class MemoryReader(Local):
    """memfs.py serving the plain tree from memory, mounted once: its files stay in memory,
    so fresh() only drops the kernel's caches."""
    name = MEMFS

    def __init__(self, plain: str, mountpoint: str):
        self.fuse = FuseProcess([sys.executable, MEMFS_SCRIPT, plain, mountpoint], mountpoint,
                                timeout=600)  # it reads every file first
        self.fresh()

    def path(self, kind: str, rel: str = "") -> str:
        return os.path.join(self.fuse.mountpoint, kind, rel)

    def close(self) -> None:
        self.fuse.close()


def memory_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


class PeerReader(Local):
    """A peer's FUSE mount of the plain tree; fresh() remounts it with an empty cache."""

    def __init__(self, name: str, mount_fn):
        self.name = name
        self.mount_fn = mount_fn
        self.fuse = None
        self.fresh()

    def fresh(self) -> None:
        if self.fuse:
            self.fuse.close()
        self.fuse = self.mount_fn()
        drop_caches()

    def path(self, kind: str, rel: str = "") -> str:
        return os.path.join(self.fuse.mountpoint, kind, rel)

    def close(self) -> None:
        if self.fuse:
            self.fuse.close()


def read_all(path: str, block: int = MiB) -> int:
    n = 0
    fd = os.open(path, os.O_RDONLY)
    try:
        while chunk := os.read(fd, block):
            n += len(chunk)
    finally:
        os.close(fd)
    return n


def mb_per_s(nbytes: int, seconds: float) -> float:
    return nbytes / 1e6 / seconds


def sequential(path: str, expect: int) -> float:
    start = time.perf_counter()
    got = read_all(path)
    seconds = time.perf_counter() - start
    if got != expect:
        raise SystemExit(f"read {got} bytes of {path}, expected {expect}")
    return mb_per_s(got, seconds)


def random_reads(path: str, size: int, block: int, count: int, seed: int) -> float:
    """Reads per second of `count` block-aligned reads at random offsets."""
    rng = random.Random(seed)
    offsets = [rng.randrange(size // block) * block for _ in range(count)]
    fd = os.open(path, os.O_RDONLY)
    try:
        start = time.perf_counter()
        for off in offsets:
            if len(os.pread(fd, block, off)) != block:
                raise SystemExit(f"short read in {path} at {off}")
        return count / (time.perf_counter() - start)
    finally:
        os.close(fd)


def parallel(paths: list[str], readers: int) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(readers) as pool:
        total = sum(pool.map(read_all, paths))
    return mb_per_s(total, time.perf_counter() - start)


SEQ = ["cold: empty caches", "warm cache, kernel cache dropped", "warm kernel cache"]
RANDOM = ["random 4 KiB reads, warm cache", "random 1 MiB reads, warm cache",
          "random 4 KiB reads, cold", "random 1 MiB reads, cold"]
PAR = [f"{k} parallel reader{'s' if k > 1 else ''}, cold" for k in PARALLEL]
WALK = ["first walk, cold", "second walk"]


def measure(tool: Local, size: Size, tree_files: int) -> dict[str, float]:
    out: dict[str, float] = {}
    big = tool.path("data", "big.bin")
    tool.fresh()
    out[SEQ[0]] = sequential(big, size.read_file)
    drop_caches()
    out[SEQ[1]] = sequential(big, size.read_file)
    out[SEQ[2]] = statistics.median(sequential(big, size.read_file)
                                    for _ in range(KERNEL_CACHE_PASSES))

    n = size.random_reads
    drop_caches()
    out[RANDOM[0]] = random_reads(big, size.read_file, 4096, n * 4, seed=1)
    drop_caches()
    out[RANDOM[1]] = random_reads(big, size.read_file, MiB, n, seed=2)
    tool.fresh()
    out[RANDOM[2]] = random_reads(big, size.read_file, 4096, n // 3, seed=3)
    tool.fresh()
    out[RANDOM[3]] = random_reads(big, size.read_file, MiB, n // 3, seed=4)

    files = [tool.path("data", f"par/p{i:02}.bin") for i in range(16)]
    for readers, name in zip(PARALLEL, PAR):
        tool.fresh()
        out[name] = parallel(files, readers)

    tool.fresh()
    out[WALK[0]] = walk(tool.path("tree"), tree_files)
    out[WALK[1]] = walk(tool.path("tree"), tree_files)
    return out


def run_scenario(size: Size, reps: int) -> tuple[list[Table], list, list[Target]]:
    work = scratch("read")
    plain = os.path.join(work, "plain")
    rng = random.Random(5)
    os.makedirs(os.path.join(plain, "data", "par"))
    data.write_random(os.path.join(plain, "data", "big.bin"), size.read_file, rng)
    for i in range(16):
        data.write_random(os.path.join(plain, "data", "par", f"p{i:02}.bin"), size.parallel_file,
                          rng)
    data.small_files(os.path.join(plain, "tree"), size.tree_files, rng, per_dir=1000)

    dm = Datamonfs(work)
    for kind in ("data", "tree"):
        dm("repo", "create", kind)
        dm("bundle", "upload", kind, os.path.join(plain, kind), "-m", kind, "--label", "v1")

    s3_tree = min(size.tree_files, S3FS_TREE)
    tools: list[Local] = [Local(plain)]
    skipped: list[str] = []
    walk_notes: list[str] = []
    s3 = None
    try:
        tools.append(DatamonfsReader(dm))
        plain_bytes = tree_bytes(plain)
        if plain_bytes > memory_available() // 2:
            skipped.append(f"{MEMFS} not run: the {plain_bytes / 2**30:.1f} GiB of files "
                           "would take more than half the memory available.")
        else:
            tools.append(MemoryReader(plain, os.path.join(work, "m-memfs")))
        if why := missing("rclone"):
            skipped.append(f"rclone not run: {why}.")
        else:
            rclone = Rclone(work)
            tools.append(PeerReader(RCLONE, lambda: rclone.mount(plain, os.path.join(work, "m-rclone"))))
        if why := missing("s3fs") or missing("moto"):
            skipped.append(f"s3fs not run: {why}.")
        else:
            s3 = S3(work)
            s3.upload(os.path.join(plain, "data"), "data")
            dirs = -(-s3_tree // 1000)  # the tree has directories of 1,000 files
            for d in sorted(os.listdir(os.path.join(plain, "tree")))[:dirs]:
                s3.upload(os.path.join(plain, "tree", d), f"tree/{d}")
            tools.append(PeerReader(S3FS, lambda: s3.mount(os.path.join(work, "m-s3fs"))))
            if s3_tree < size.tree_files:
                walk_notes.append(f"s3fs walks the first {s3_tree:,} files of the tree only: it "
                               "sends a request per file to moto; files/s still compare.")
        measured = alternate(reps, {
            t.name: (lambda t=t: measure(t, size, s3_tree if t.name == S3FS else size.tree_files))
            for t in tools})
    finally:
        for t in tools:
            t.close()
        if s3:
            s3.close()
    tree_size = tree_bytes(os.path.join(plain, "tree"))
    shutil.rmtree(work)

    columns = [OURS, RCLONE, S3FS, MEMFS, LOCAL]
    mib = size.read_file // MiB
    tables = []
    for title, names, unit in (
            (f"Sequential read of one {mib:,} MiB file", SEQ, "MB/s"),
            (f"Random reads in the {mib:,} MiB file ({size.random_reads * 4} × 4 KiB and "
             f"{size.random_reads} × 1 MiB warm, a third of that cold)", RANDOM, "reads/s"),
            (f"Parallel readers of 16 files of {size.parallel_file // MiB} MiB", PAR, "MB/s"),
            (f"find + stat of {size.tree_files:,} small files ({tree_size / 2**20:.0f} MiB)",
             WALK, "files/s")):
        table = Table(SCENARIO, title, columns, limit=LOCAL)
        for name in names:
            table.figure(name, unit, True).samples.update(measured.get(name, {}))
        tables.append(table)
    tables[0].notes += [
        "cold: datamonfs and the peers remounted over empty caches, kernel caches dropped; "
        "local disk: kernel caches dropped (the same measure serves as its warm-cache row, "
        "since a plain file has no second cache).",
        "datamonfs and rclone read a store on this disk; s3fs reads from moto, an in-memory "
        "S3 server in Python, so its 'cold' never touches the disk.",
        "datamonfs reads a local store's packs in place (cache/in_place.py: no block cache), "
        "so its 'warm cache' row is a second read of the same packs, kernel caches dropped; "
        "rclone's is a read of the copy in its VFS cache.",
        f"warm kernel cache: the median of {KERNEL_CACHE_PASSES} passes in a row over the "
        "file, 1 MiB read()s, right after the warm-cache pass that filled the kernel's "
        "cache (its samples are those medians).",
        f"{MEMFS}: scripts/benchsuite/memfs.py, a minimal pyfuse3 file system serving the "
        "same files from memory with datamonfs' mount options, read-ahead, timeouts and "
        "keep_cache: the FUSE limit. Against it, a ratio shows what the daemon costs; "
        "against local disk, what FUSE costs too. Its files stay in memory, so its 'cold' "
        "and 'warm cache' rows are the same measure: kernel caches dropped.",
    ]
    tables[0].notes += skipped
    tables[3].notes += walk_notes
    return tables, [], []  # its targets are the issue's, in goals.py
