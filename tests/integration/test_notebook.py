"""examples/explore.ipynb, run top to bottom by nbclient on a real ipykernel, as a new user
would: no datamonfs config at all, the embedded local store. Then the bundle it made is
read back: its files, its label, its input, its process. A second run changes nothing."""

from __future__ import annotations

import os

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

import datamonfs

NOTEBOOK = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "explore.ipynb")


def run_notebook(workdir) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(workdir)}}).execute()
    return nb


@pytest.fixture
def new_user(tmp_path, monkeypatch):
    """A home with nothing in it: the kernel inherits this environment."""
    for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"),
                     ("XDG_CACHE_HOME", "cache"), ("XDG_STATE_HOME", "state")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    for var in ("DATAMONFS_CONFIG", "DATAMONFS_STORE", "DATAMONFS_CACHE_DIR"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_the_notebook_runs_and_makes_its_bundle(new_user):
    nb = run_notebook(new_user)
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "made from:" in text and "digraph lineage {" in text

    assert os.path.isdir(new_user / "data" / "datamonfs" / "store")  # the embedded store
    store = datamonfs.open()
    raw, derived = store.bundle("weather:raw-v1"), store.bundle("weather:monthly-v1")
    assert derived.parents == (raw.id,) and derived.author == "Notebook user"
    assert [(i.repo, i.bundle) for i in derived.inputs] == [("weather", raw.id)]
    assert derived.process.notebook == "examples/explore.ipynb"
    assert [c.to_json()["path"] for c in raw.diff(derived)] == [
        "derived/monthly.csv", "derived/monthly.parquet"]

    readings = pd.read_parquet(raw.open("readings.parquet"))
    stations = pd.read_csv(raw.open("stations.csv"))
    want = (readings.assign(month=readings.day.dt.strftime("%Y-%m"))
            .groupby(["station", "month"], as_index=False).temp_c.mean()
            .merge(stations[["station", "city"]], on="station").round({"temp_c": 2}))
    got = pd.read_parquet(derived.open("derived/monthly.parquet"))
    assert got.equals(want) and len(got) == 4 * 12
    assert pd.read_csv(derived.open("derived/monthly.csv")).equals(want)

    run_notebook(new_user)  # again: the same content, so no new bundle
    assert [b.id for b in store.repo("weather").bundles()] == [derived.id, raw.id]
    store.close()
