"""4. Writes and commit through a writable mount: sequential write (`dd conv=fsync`),
untar of many small files (with and without a final `sync -f`), beside local disk (the limit) and a writable `rclone mount
--vfs-cache-mode full`; then commits after changing 1% of a dataset, bytes uploaded
beside bytes changed."""

from __future__ import annotations

import os
import random
import shutil
import subprocess

from . import data
from .common import MiB, Datamonfs, scratch, timed, tree_bytes
from .measure import OURS, Table, alternate
from .peers import LOCAL, RCLONE, writable_targets
from .sizes import Size

SCENARIO = "4. Writes and commit"


def run_scenario(size: Size, reps: int) -> tuple[list[Table], list, list]:
    work = scratch("write")
    dm = Datamonfs(work)
    dm("repo", "create", "write")
    source = os.path.join(work, "source.bin")
    data.write_random(source, size.write_file, random.Random(9))
    archive = os.path.join(work, "files.tar")
    data.tar_of_small_files(archive, size.untar_files)
    with writable_targets(work, dm, "write") as (targets, notes):
        attempt = iter(range(10_000))

        disk_writes: dict[str, list[float]] = {}

        def writer(name: str, root: str):
            def one() -> dict[str, float]:
                n = next(attempt)
                subprocess.run(["cat", source], check=True, stdout=subprocess.DEVNULL)
                dest = os.path.join(root, f"seq{n}.bin")
                # Each timed step starts after `sync`: its fsync then pays for its own bytes,
                # not for what the tool before it left dirty on the shared disk.
                subprocess.run(["sync"], check=True)
                before = sectors_written()
                seq = timed(["dd", f"if={source}", f"of={dest}", "bs=1M", "conv=fsync"])
                disk_writes.setdefault(name, []).append(
                    (sectors_written() - before) * 512 / size.write_file)
                os.unlink(dest)
                tree, synced = (os.path.join(root, f"untar{n}{s}") for s in ("", "-sync"))
                os.makedirs(tree)
                os.makedirs(synced)
                subprocess.run(["sync"], check=True)
                untar = timed(["tar", "xf", archive, "-C", tree])
                subprocess.run(["sync"], check=True)
                untar_sync = timed(f"tar xf {archive} -C {synced} && sync -f {synced}")
                return {"sequential write": size.write_file / 1e6 / seq,
                        "untar": size.untar_files / untar,
                        "untar sync": size.untar_files / untar_sync}
            return one

        measured = alternate(reps, {name: writer(name, root) for name, root in targets.items()})
        commit_seconds = dm.run("commit", targets[OURS], "-m", "untarred").seconds

    speed = Table(SCENARIO, f"Write through a writable mount ({size.write_file // MiB:,} MiB "
                  f"file, {size.untar_files:,} small files)", [OURS, RCLONE, LOCAL], limit=LOCAL)
    speed.figure("sequential write, dd conv=fsync", "MB/s", True).samples.update(
        measured["sequential write"])
    speed.figure("untar of small files, no sync", "files/s", True).samples.update(
        measured["untar"])
    speed.figure("untar of small files, then sync -f", "files/s", True).samples.update(
        measured["untar sync"])
    speed.notes += [
        "Both mounts stage writes locally: datamonfs in its overlay (until `commit`), rclone in "
        "its VFS cache (uploaded to its local backend after close). The time is what the "
        "writer waits for; every timed step starts after `sync`.",
        "Untar, no sync: until `tar` exits (every file closed: on datamonfs that makes it "
        "survive SIGKILL of the daemon; on local disk the bytes are in the page cache). Then "
        "sync -f: until `sync -f` of the tree returns too. On local disk that writes the files "
        "to the disk; on a FUSE mount the kernel writes its cached pages back to the daemon "
        "and asks nothing else (pyfuse3 has no syncfs request), so it adds nothing durable "
        "there: fsync or `datamonfs commit` does.",
        "Disk writes while `dd conv=fsync` ran, all processes, as a multiple of the file "
        "(≥ 1: its fsync reached the disk): " + ", ".join(
            f"{name} {min(v):.2f}–{max(v):.2f}×" for name, v in disk_writes.items()) + ".",
        f"`datamonfs commit` of the {reps} × 2 untarred trees ({2 * reps * size.untar_files:,} "
        f"files): {commit_seconds:.1f} s.",
    ]
    speed.notes += notes
    commit = commits(dm, work, size, reps)
    shutil.rmtree(work)
    return [speed, commit], [], []


def sectors_written() -> int:
    """512-byte sectors the machine's disks have written since boot (/proc/diskstats)."""
    disks = {d for d in os.listdir("/sys/block") if not d.startswith(("loop", "ram", "zram"))}
    with open("/proc/diskstats") as f:
        return sum(int(fields[9]) for fields in map(str.split, f) if fields[2] in disks)


def commits(dm: Datamonfs, work: str, size: Size, reps: int) -> Table:
    """Commit after 1% of a dataset of 100 files changed, two ways, `reps` times each."""
    source = os.path.join(work, "dataset")
    os.makedirs(source)
    per_file = size.commit_dataset // 100
    rng = random.Random(11)
    for i in range(100):
        data.write_random(os.path.join(source, f"part{i:03}.bin"), per_file, rng)
    timed(["sync"])
    upload = dm.run("bundle", "upload", "write", source, "-m", "dataset", "--branch", "data")
    mp = dm.mount("write:data", "m-commit", "--rw")
    samples: dict[str, dict[str, list[float]]] = {}

    def commit(name: str, changed: int) -> None:
        before = tree_bytes(dm.store_dir)
        seconds = dm.run("commit", mp, "-m", name).seconds
        grew = tree_bytes(dm.store_dir) - before
        samples.setdefault(f"{name}: uploaded", {}).setdefault(OURS, []).append(grew / 2**20)
        samples[f"{name}: uploaded"].setdefault("changed bytes", []).append(changed / 2**20)
        samples.setdefault(f"{name}: commit time", {}).setdefault(OURS, []).append(seconds)

    try:
        for rep in range(reps):
            with open(os.path.join(mp, f"part{rep:03}.bin"), "r+b") as f:  # 1 file in 100
                f.write(rng.randbytes(per_file))
            commit("1% of files rewritten", per_file)
            piece = per_file // 4
            for k in range(4):  # 1% of the bytes in place, four ranges in four files
                with open(os.path.join(mp, f"part{20 + 20 * k + rep:03}.bin"), "r+b") as f:
                    f.seek(rng.randrange(per_file - piece))
                    f.write(rng.randbytes(piece))
            commit("1% of bytes in 4 ranges", 4 * piece)
    finally:
        dm.close()
    table = Table(SCENARIO, f"Commit after changing 1% of a {size.commit_dataset // MiB:,} MiB "
                  "dataset of 100 files", [OURS, "changed bytes"], limit="changed bytes")
    for name, by_column in samples.items():
        unit = "MiB" if name.endswith("uploaded") else "s"
        table.figure(name, unit, False).samples.update(by_column)
    table.notes.append(
        f"Uploaded = growth of the store, metadata included. For scale: `bundle upload` of the "
        f"whole dataset took {upload.seconds:.1f} s.")
    return table
