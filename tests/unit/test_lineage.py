"""Lineage through the Python API: inputs and process recorded, walked up from records and
down from the marker keys, across repos; planted markers cannot invent lineage."""

from __future__ import annotations

import json

import pytest

import datamonfs
from datamonfs.core import lineage, rules
from datamonfs.core.model import Process
from support.sdk import open_store


@pytest.fixture
def store(store_url, tmp_path):
    s = open_store(store_url, tmp_path)
    yield s
    s.close()


def make(repo, name: str, inputs=(), process=None) -> datamonfs.Bundle:
    with repo.new_bundle(message=name, inputs=inputs, process=process) as nb:
        nb.write_bytes(f"{name}.txt", name.encode())
    return nb.bundle


@pytest.fixture
def chain(store):
    """raw:a -> clean:b -> (models:c, models:d); models:d also from raw:a; e alone."""
    raw, clean, models = (store.create_repo(n) for n in ("raw", "clean", "models"))
    a = make(raw, "a")
    b = make(clean, "b", [a], "dropped empty rows")
    c = make(models, "c", ["clean:main"],
             {"notebook": "train.ipynb", "code_version": "4fc1a2b", "command": ["jupyter"]})
    d = make(models, "d", [b, "raw"], Process(("python", "fit.py"), "gpu-1"))
    e = make(raw, "e")
    return a, b, c, d, e


def test_what_a_bundle_records(chain):
    a, b, c, d, e = chain
    assert [(i.repo, i.bundle) for i in b.inputs] == [("raw", a.id)]
    assert b.process.description == "dropped empty rows" and b.process.host
    assert c.process.to_obj() == {"command": ["jupyter"], "notebook": "train.ipynb",
                                  "code_version": "4fc1a2b", "host": c.process.host}
    assert [i.bundle for i in d.inputs] == [b.id, a.id]
    assert d.to_json()["process"] == {"command": ["python", "fit.py"], "host": "gpu-1"}
    assert a.inputs == () and a.process is None and "inputs" not in a.to_json()


def test_lineage_up_and_down_across_repos(store, chain):
    a, b, c, d, e = chain
    up = store.lineage(d, down=False)
    assert {x.id for x in up.bundles} == {a.id, b.id, d.id}
    assert sorted(up.edges) == sorted([(("clean", b.id), ("models", d.id)),
                                       (("raw", a.id), ("models", d.id)),
                                       (("raw", a.id), ("clean", b.id))])
    down = a.lineage(up=False)
    assert {x.id for x in down.bundles} == {a.id, b.id, c.id, d.id}
    assert {x.id for x in down.outputs_of(a)} == {b.id, d.id}
    assert {x.id for x in down.inputs_of(d)} == {a.id, b.id}  # d is found from a and from b
    one = store.lineage("raw:" + a.id, up=False, depth=1)
    assert {x.id for x in one.bundles} == {a.id, b.id, d.id} and one.truncated
    assert not store.lineage(e).edges and not store.lineage(e).truncated
    doc = json.loads(json.dumps(b.lineage().to_json()))
    assert doc["start"] == f"clean:{b.id}" and not doc["truncated"]
    assert {x["id"] for x in doc["bundles"]} == {a.id, b.id, c.id, d.id}
    assert {"input": f"raw:{a.id}", "output": f"clean:{b.id}"} in doc["edges"]


def test_lineage_as_text_and_graphviz(store, chain):
    a, b, c, d, e = chain
    text = store.lineage(b).to_text()
    assert text.splitlines()[0].startswith(f"clean:{b.id[:12]}")
    assert "made from:\n  raw:" in text and "used to make:\n  models:" in text
    dot = store.lineage(b).to_dot()
    assert dot.startswith("digraph lineage {") and dot.rstrip().endswith("}")
    assert f'"raw:{a.id}" -> "clean:{b.id}";' in dot
    assert f'"clean:{b.id}" -> "models:{c.id}";' in dot


def test_an_input_gone_from_the_store_is_shown_missing(store, chain):
    a, b, c, d, e = chain
    store.repository.store.delete(f"bundle/raw/{a.id}")
    graph = store.lineage(b)
    assert graph.missing == [("raw", a.id)] and "not in the store" in graph.to_text()
    assert f"raw:{a.id}" in graph.to_json()["missing"]


def test_inputs_must_be_bundles_of_the_store(store, chain):
    repo = store.repo("models")
    with pytest.raises(datamonfs.NotFound):
        repo.new_bundle(inputs=["raw:nope"])
    with pytest.raises(datamonfs.InvalidName):
        repo.new_bundle(inputs=[42])
    with pytest.raises(datamonfs.DatamonError, match="longer than"):
        repo.new_bundle(process="x" * (rules.MAX_PROCESS_BYTES + 1))
    with pytest.raises(datamonfs.DatamonError, match="NUL"):
        repo.new_bundle(process={"notebook": "a\0b"})


@pytest.mark.parametrize("tail", ["other", "models/" + "0" * 64 + "/extra",
                                  "-bad/" + "0" * 64, "models/not-an-id"])
def test_malformed_markers_are_refused(store, chain, tail):
    a = chain[0]
    store.repository.store.put(f"lineage/raw/{a.id}/{tail}", b"")
    with pytest.raises(datamonfs.IntegrityError, match="unexpected key"):
        store.lineage(a)


def test_planted_markers_cannot_invent_lineage(store, chain):
    a, b, c, d, e = chain
    store.repository.store.put(f"lineage/raw/{e.id}/models/{c.id}", b"")  # c is not from e
    with pytest.raises(datamonfs.IntegrityError, match="was not made from"):
        store.lineage(e)
    store.repository.store.delete(f"lineage/raw/{e.id}/models/{c.id}")
    store.repository.store.put(f"lineage/raw/{e.id}/models/{'1' * 64}", b"")  # no such bundle
    with pytest.raises(datamonfs.IntegrityError, match="does not exist"):
        store.lineage(e)


def test_markers_are_written_with_the_bundle_and_idempotent(store, chain):
    a, b, c, d, e = chain
    keys = sorted(store.repository.store.list("lineage/"))
    assert keys == sorted(lineage.marker_keys(b.record) + lineage.marker_keys(c.record)
                          + lineage.marker_keys(d.record))
    store.repository.write_bundle(d.record)  # a re-run, as after a crash
    assert sorted(store.repository.store.list("lineage/")) == keys
