"""2. Versions and dedup: ten successive versions of the mixed dataset, ~1% of its bytes
changed each time (in place, inserted near the start of a large file, small files
rewritten, added and removed). Store bytes and bytes uploaded per version for datamonfs,
DVC (whole-file dedup) and datamon's fixed 2 MiB position-keyed blocks (computed here
from the same files), beside the bytes that actually changed (the limit)."""

from __future__ import annotations

import os
import shutil

from . import data
from .common import Datamonfs, scratch, timed, tree_bytes
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
    target = Target("ten versions cost ≤ 1.3× one version (datamonfs store)", "≤ 1.30×",
                    f"{ratio:.2f}×", ratio <= 1.3)
    return [table], [series], [target]
