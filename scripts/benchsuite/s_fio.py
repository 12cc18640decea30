"""6. fio on a writable mount: 4 KiB random reads and writes (4 jobs), 64 KiB random writes
with an fsync every 32, a sequential 1 MiB write and reading it back, beside a plain
directory on the same disk (the limit) and a writable `rclone mount --vfs-cache-mode
full`; then a long fio run with data verification (`verify=crc32c`) on the mount."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from .common import MiB, Datamonfs, scratch
from .measure import OURS, Table, Target, alternate
from .peers import LOCAL, RCLONE, writable_targets
from .sizes import Size

SCENARIO = "6. fio on a writable mount"
RANDOM, FSYNCED, SEQ_WRITE, SEQ_READ = (
    "4 KiB random read/write, 4 jobs", "64 KiB random writes, fsync every 32",
    "sequential 1 MiB write", "sequential 1 MiB read back")
# The goals, as multiples of the plain directory's figure.
GOALS = {RANDOM: 0.3, SEQ_WRITE: 0.6, SEQ_READ: 0.6}


def fio(directory: str, name: str, *args: str) -> dict:
    """One fio job group in `directory`; its JSON report."""
    out = subprocess.run(["fio", f"--name={name}", f"--directory={directory}",
                          "--group_reporting", "--output-format=json", *args],
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"fio {name} in {directory} failed:\n{out.stderr[-2000:]}"
                         f"{out.stdout[-2000:]}")
    return json.loads(out.stdout[out.stdout.index("{"):])


def mib_per_s(report: dict, *kinds: str) -> float:
    job = report["jobs"][0]
    return sum(job[k]["bw_bytes"] for k in kinds) / MiB


def job_args(size: Size) -> dict[str, tuple[str, list[str], tuple[str, ...]]]:
    """Each figure's fio job: (job name, arguments, the directions its MiB/s adds up). The
    two sequential jobs share a name, so the read-back reads the file just written."""
    runtime, total = str(size.fio_seconds), f"{size.fio_file // MiB}M"
    timed = ["--time_based", f"--runtime={runtime}"]
    return {
        RANDOM: ("randrw", ["--rw=randrw", "--bs=4k", "--numjobs=4",
                            f"--size={size.fio_file // 4 // MiB}M", *timed], ("read", "write")),
        FSYNCED: ("fsynced", ["--rw=randwrite", "--bs=64k", "--fsync=32", f"--size={total}",
                              *timed], ("write",)),
        SEQ_WRITE: ("seq", ["--rw=write", "--bs=1M", "--end_fsync=1", f"--size={total}"],
                    ("write",)),
        # fio invalidates the file's cached pages before it reads
        SEQ_READ: ("seq", ["--rw=read", "--bs=1M", f"--size={total}"], ("read",)),
    }


def jobs(size: Size):
    def measure(root: str) -> dict[str, float]:
        d = os.path.join(root, "fio")
        os.makedirs(d, exist_ok=True)
        out = {figure: mib_per_s(fio(d, name, *args), *kinds)
               for figure, (name, args, kinds) in job_args(size).items()}
        shutil.rmtree(d)
        return out
    return measure


def run_scenario(size: Size, reps: int) -> tuple[list[Table], list, list]:
    work = scratch("fio")
    dm = Datamonfs(work)
    dm("repo", "create", "fio")
    with writable_targets(work, dm, "fio") as (targets, notes):
        measure = jobs(size)
        measured = alternate(reps, {name: _bind(measure, root) for name, root in targets.items()})
        verified = verify(targets[OURS], size)
    table = Table(SCENARIO, f"fio on a writable mount ({size.fio_file // MiB} MiB of files, "
                  f"{size.fio_seconds} s per timed job)", [OURS, RCLONE, LOCAL], limit=LOCAL)
    for name in (RANDOM, FSYNCED, SEQ_WRITE, SEQ_READ):
        table.figure(name, "MiB/s", True).samples.update(measured[name])
    table.notes += [
        "fio 3.33, `ioengine=psync`, buffered I/O; the timed jobs lay their files out first "
        "(not timed). The read-back is of the file just written; fio drops its cached pages "
        "first.",
        verified,
    ] + notes
    targets_out = []
    for name, goal in GOALS.items():
        ratio = table.figures[[f.name for f in table.figures].index(name)].ratio(LOCAL)
        targets_out.append(Target(f"fio {name} ≥ {goal}× a plain directory", f"≥ {goal:.2f}×",
                                  f"{ratio:.2f}×" if ratio else "n/a",
                                  ratio is not None and ratio >= goal))
    shutil.rmtree(work, ignore_errors=True)
    return [table], [], targets_out


def _bind(measure, root: str):
    return lambda: measure(root)


def verify(root: str, size: Size) -> str:
    """A long write-and-verify run: every block written is read back and its crc32c
    checked (fio exits non-zero on the first bad block)."""
    d = os.path.join(root, "verify")
    os.makedirs(d)
    report = fio(d, "verify", "--rw=randwrite", "--bs=4k", "--numjobs=2",
                 f"--size={size.fio_verify // 2 // MiB}M", "--verify=crc32c",
                 "--verify_fatal=1", "--do_verify=1", "--verify_state_save=0")
    errors = report["jobs"][0]["error"]
    written = report["jobs"][0]["write"]["io_bytes"] / MiB
    shutil.rmtree(d)
    return (f"Verification: fio `verify=crc32c` over {written:.0f} MiB of 4 KiB random writes "
            f"(2 jobs) on the mount: {'no bad block' if errors == 0 else f'error {errors}'}.")
