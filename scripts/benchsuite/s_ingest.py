"""1. Ingest: a mixed dataset saved as a first version, beside `cp -r` to the same disk
(the limit) and DVC (`dvc add` + `dvc push` to a local remote); then a smaller one into
the GCS emulator, beside the raw google-cloud-storage client uploading the same files."""

from __future__ import annotations

import os
import random
import shutil

from . import data
from .common import Datamonfs, drop_caches, metadata_bytes, run, scratch, timed, tree_bytes
from .measure import OURS, Table, Target, alternate, fill
from .peers import Dvc, GcsEmulator, missing
from .sizes import Size

SCENARIO = "1. Ingest"
METADATA = "metadata per GiB of data (trees, chunk lists, pack indexes)"
UNITS = {"seconds to save the version": ("s", False), "peak RSS": ("MB", False),
         "bytes in the store": ("MiB", False), METADATA: ("MB/GiB", False)}


def run_scenario(size: Size, reps: int) -> tuple[list[Table], list, list]:
    work = scratch("ingest")
    workspace = os.path.join(work, "workspace")
    source = os.path.join(workspace, "data")
    data.mixed(source, size.dataset, size.dataset_small)
    total = tree_bytes(source)
    tables = [local(work, source, total, size, reps)]
    tables.append(gcs(work, size, reps))
    shutil.rmtree(work)
    return tables, [], gcs_target(tables[-1])


def local(work: str, source: str, total: int, size: Size, reps: int) -> Table:
    attempt = iter(range(10_000))

    def ours() -> dict[str, float]:
        dm = Datamonfs(os.path.join(work, f"dm{next(attempt)}"))
        dm("repo", "create", "ingest")
        drop_caches()
        up = dm.run("bundle", "upload", "ingest", source, "-m", "first version")
        sync = timed(["sync"])
        stored = tree_bytes(dm.store_dir)
        metadata = metadata_bytes(dm.store_dir)
        shutil.rmtree(dm.work)
        return {"seconds to save the version": up.seconds + sync, "peak RSS": up.peak_rss_mb,
                "bytes in the store": stored / 2**20, METADATA: metadata / 1e6 / (total / 2**30)}

    def copy() -> dict[str, float]:
        dest = os.path.join(work, "cp")
        drop_caches()
        cp = run(["cp", "-r", source, dest])
        sync = timed(["sync"])
        stored = tree_bytes(dest)
        shutil.rmtree(dest)
        return {"seconds to save the version": cp.seconds + sync, "peak RSS": cp.peak_rss_mb,
                "bytes in the store": stored / 2**20}

    contenders = {OURS: ours, "cp -r": copy}
    why_not_dvc = missing("dvc")
    if not why_not_dvc:
        dvc = Dvc(os.path.dirname(source), os.path.join(work, "dvc-remote"))

        def dvc_version() -> dict[str, float]:
            dvc.reset()
            drop_caches()
            seconds, rss = dvc.add_and_push()
            seconds += timed(["sync"])
            return {"seconds to save the version": seconds, "peak RSS": rss,
                    "bytes in the store": tree_bytes(dvc.remote) / 2**20}

        contenders["DVC"] = dvc_version
    table = Table(SCENARIO, f"Save a {total / 2**20:,.0f} MiB mixed dataset "
                  f"({size.dataset_small:,} small files, 3 large) into a local store",
                  [OURS, "DVC", "cp -r"], limit="cp -r")
    fill(table, alternate(reps, contenders), UNITS)
    table.figures[0].note = f"{total / 1e6:,.0f} MB, ending with sync"
    table.notes += [
        "Every run starts from an empty store and dropped kernel caches; times include a "
        "final `sync`, so every tool has its bytes on disk (datamonfs fsyncs as it goes).",
        "DVC (`dvc add` + `dvc push`, fresh project each time) writes the data twice: into "
        "its cache, then to the remote; the store column counts the remote only.",
    ]
    if why_not_dvc:
        table.notes.append(f"DVC not run: {why_not_dvc}.")
    return table


def gcs(work: str, size: Size, reps: int) -> Table:
    mixed = os.path.join(work, "gcs-data")
    data.mixed(mixed, size.gcs_large + size.gcs_small * 32 * 1024, size.gcs_small, large=1,
               seed=2)
    small = os.path.join(work, "gcs-small")
    data.small_files(small, size.gcs_files, random.Random(4), per_dir=1000)
    cases = {}
    for source in (mixed, small):
        files, total = len(data.files_of(source)), tree_bytes(source)
        what = "mixed" if source == mixed else "small files"
        cases[f"{files:,} {what} ({total / 2**20:.0f} MiB)"] = (source, total)
    attempt = iter(range(10_000))

    def measure(upload, name: str) -> dict[str, float]:
        source, total = cases[name]
        emulator = GcsEmulator()
        try:
            seconds = upload(emulator, source)
            return {f"{name}: seconds to upload": seconds,
                    f"{name}: requests per GiB": emulator.requests() / (total / 2**30)}
        finally:
            emulator.close()

    def ours(emulator: GcsEmulator, source: str) -> float:
        dm = Datamonfs(os.path.join(work, f"gcs-dm{next(attempt)}"),
                       store=f"gs://{emulator.BUCKET}/dm", env=emulator.env)
        dm("repo", "create", "ingest")
        seconds = dm.run("bundle", "upload", "ingest", source, "-m", "first").seconds
        shutil.rmtree(dm.work)
        return seconds

    def raw(emulator: GcsEmulator, source: str) -> float:
        return emulator.raw_upload(source)

    measured: dict[str, dict[str, list[float]]] = {}
    for name, times in zip(cases, (reps, 1)):  # the small files: minutes a run, see below
        measured |= alternate(times, {OURS: lambda n=name: measure(ours, n),
                                      "raw client": lambda n=name: measure(raw, n)})
    table = Table(SCENARIO, "Upload into the GCS emulator", [OURS, "raw client"],
                  limit="raw client")
    for name, samples in measured.items():
        unit = ("s", False) if name.endswith("upload") else ("requests/GiB", False)
        table.figure(name, *unit).samples.update(samples)
    table.notes.append(
        "A fresh in-memory gcp-storage-emulator per run: it slows as objects accumulate, so "
        "these sizes are the same at every SIZE and only the ratios mean anything. The raw "
        "client puts each file as one object, 8 at a time (datamonfs' upload parallelism); "
        "datamonfs also writes its trees, bundle record and refs, and its request count "
        "includes the repo creation's. Requests are counted by the emulator (every HTTP "
        "request it serves, one at a time: it is single-threaded). The emulator's time per "
        "request grows with the objects it holds, so the small files run once: a run of "
        "datamonfs format 1 (two requests a file) took about 20 minutes.")
    return table


def gcs_target(table: Table) -> list[Target]:
    targets = []
    for fig in table.figures:
        if fig.unit == "s":
            r = fig.ratio("raw client") or 0
            targets.append(Target(f"GCS emulator, {fig.name.split(':')[0]}: ≥ 3× the raw "
                                  "client", "≥ 3.00×", f"{r:.2f}×", r >= 3))
    return targets
