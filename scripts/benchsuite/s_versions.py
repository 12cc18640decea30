"""2. Versions and dedup: ten successive versions of the mixed dataset, ~1% of its bytes
changed each time (in place, inserted near the start of a large file, small files
rewritten, added and removed). Store bytes and bytes uploaded per version for datamonfs,
DVC (whole-file dedup) and datamon's fixed 2 MiB position-keyed blocks (computed here
from the same files), beside the bytes that actually changed (the limit). Then scattered
edits: 1% of one large file overwritten as many 64 KiB patches at random offsets, bytes
uploaded beside bytes changed."""

from __future__ import annotations

import os
import random
import shutil

from . import data
from .common import MiB, Datamonfs, metadata_bytes, scratch, timed, tree_bytes
from .measure import OURS, Series, Table, Target
from .peers import Dvc, missing
from .sizes import Size

SCENARIO = "2. Versions and dedup"
VERSIONS = 10
DATAMON = "datamon (2 MiB blocks)"
CHANGED = "changed bytes"


def run_scenario(size: Size, reps: int) -> tuple[list[Table], list[Series], list[Target]]:
    work = scratch("versions")
    workspace = os.path.join(work, "workspace")
    source = os.path.join(workspace, "data")
    data.mixed(source, size.dataset, size.dataset_small)
    dm = Datamonfs(work)
    dm("repo", "create", "versions")
    why_not_dvc = missing("dvc")
    dvc = None if why_not_dvc else Dvc(workspace, os.path.join(work, "dvc-remote"))
    if dvc:
        dvc.reset()
    datamon = data.DatamonBlocks()

    stored: dict[str, list[float]] = {OURS: [], "DVC": [], DATAMON: [], CHANGED: []}
    seconds: dict[str, list[float]] = {OURS: [], "DVC": []}
    for version in range(1, VERSIONS + 1):
        if version > 1:
            change = data.next_version(source, version).written
            stored[CHANGED].append(stored[CHANGED][-1] + change)
        else:
            stored[CHANGED].append(tree_bytes(source))
        timed(["sync"])
        seconds[OURS].append(dm.run("bundle", "upload", "versions", source,
                                    "-m", f"version {version}").seconds)
        stored[OURS].append(tree_bytes(dm.store_dir))
        if dvc:
            seconds["DVC"].append(dvc.add_and_push()[0])
            stored["DVC"].append(tree_bytes(dvc.remote))
            dvc.trim_cache()  # untimed
        datamon.add_version(source)
        stored[DATAMON].append(datamon.bytes)
    shutil.rmtree(work)

    columns = [OURS, "DVC", DATAMON, CHANGED]
    table = Table(SCENARIO, f"Ten versions of the {size.dataset / 2**20:,.0f} MiB mixed "
                  "dataset, ~1% of the bytes changed each", columns, limit=CHANGED)
    mib = lambda values: [v / 2**20 for v in values]  # noqa: E731
    per_version = {c: mib(b - a for a, b in zip(v, v[1:])) for c, v in stored.items() if v}
    table.figure("store after version 1", "MiB", False).samples.update(
        {c: [v[0] / 2**20] for c, v in stored.items() if v})
    table.figure("store after version 10", "MiB", False).samples.update(
        {c: [v[-1] / 2**20] for c, v in stored.items() if v})
    table.figure("ten versions / one version", "×", False).samples.update(
        {c: [v[-1] / v[0]] for c, v in stored.items() if v})
    table.figure("uploaded per new version", "MiB", False,
                 note="median of 9, min–max").samples.update(per_version)
    table.figure("seconds per new version", "s", False,
                 note="median of 9").samples.update({c: v[1:] for c, v in seconds.items() if v})
    table.notes += [
        "Byte figures are exact, not timed: each version is made once and saved by every "
        "tool; the per-version rows show the spread over versions 2–10.",
        "Store bytes: the datamonfs store directory (chunks and metadata), the DVC remote "
        "(one object per distinct file), datamon's distinct (position, BLAKE2b) 2 MiB "
        "blocks (its metadata not counted). The limit column is version 1 plus the bytes "
        "each later version wrote (overwritten, inserted, rewritten and added).",
        "Each version: one region of ~0.5% overwritten in one large file, 64 KiB inserted "
        "in the first MiB of another, and small files rewritten, removed and added.",
    ]
    if why_not_dvc:
        table.notes.append(f"DVC not run: {why_not_dvc}.")

    series = Series(SCENARIO, "Store size over ten versions", "version", "MiB in the store",
                    list(range(1, VERSIONS + 1)), {c: mib(v) for c, v in stored.items() if v})
    ratio = stored[OURS][-1] / stored[OURS][0]
    limit = stored[CHANGED][-1] / stored[CHANGED][0]
    targets = [Target("ten versions / one version ≤ 1.05× the changed bytes' (datamonfs "
                      "store)", "≤ 1.05×", f"{ratio / limit:.3f}× ({ratio:.3f}× for "
                      f"{limit:.3f}×)", ratio / limit <= 1.05)]
    scattered_table, scattered_target = scattered(size)
    return [table, scattered_table], [series], targets + [scattered_target]


PATCH = 64 * 1024


def scattered(size: Size) -> tuple[Table, Target]:
    """One large file uploaded, then 1% of it overwritten as 64 KiB patches at random
    offsets and uploaded again: what the store grows by, beside the bytes changed."""
    work = scratch("scattered")
    source = os.path.join(work, "data")
    os.makedirs(source)
    path = os.path.join(source, "big.bin")
    rng = random.Random(21)
    data.write_random(path, size.scattered_file, rng)
    dm = Datamonfs(work)
    dm("repo", "create", "scattered")
    dm("bundle", "upload", "scattered", source, "-m", "before")
    before, meta_before = tree_bytes(dm.store_dir), metadata_bytes(dm.store_dir)
    patches = size.scattered_file // 100 // PATCH
    with open(path, "r+b") as f:
        for _ in range(patches):
            f.seek(rng.randrange(size.scattered_file - PATCH))
            f.write(rng.randbytes(PATCH))
    timed(["sync"])
    seconds = dm.run("bundle", "upload", "scattered", source, "-m", "after").seconds
    grew = tree_bytes(dm.store_dir) - before
    meta_grew = metadata_bytes(dm.store_dir) - meta_before
    changed = patches * PATCH
    shutil.rmtree(work)
    table = Table(SCENARIO, f"Scattered edits: 1% of a {size.scattered_file // MiB:,} MiB file "
                  f"changed as {patches:,} patches of 64 KiB", [OURS, CHANGED], limit=CHANGED)
    table.figure("uploaded", "MiB", False).samples.update(
        {OURS: [grew / 2**20], CHANGED: [changed / 2**20]})
    table.figure("of which metadata", "MiB", False).samples[OURS] = [meta_grew / 2**20]
    table.figure("seconds to upload the new version", "s", False).samples[OURS] = [seconds]
    table.notes.append(
        "Patches overwrite 64 KiB in place at random offsets (they may overlap); uploaded = "
        "growth of the store after `bundle upload` of the changed file, metadata (tree, "
        "chunk-list and pack-index objects) included.")
    ratio = grew / changed
    return table, Target("scattered edits: uploaded ≤ 2× the changed bytes", "≤ 2.00×",
                         f"{ratio:.2f}×", ratio <= 2)

