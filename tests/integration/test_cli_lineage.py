"""The CLI's queries and lineage: bundle list --author/--since/--until/
--grep/--label, upload and commit --input, datamonfs lineage (text, JSON, dot) and
datamonfs log; lineage on both stores."""

from __future__ import annotations

import datetime
import json
import os

import pytest

from support.cli import one_line_error, with_env


def upload(cli, repo, folder, *extra) -> str:
    return cli("bundle", "upload", repo, str(folder), "-m", f"msg {folder.name}", *extra).last_line


def folder(tmp_path, name: str, files: dict[str, bytes]):
    root = tmp_path / name
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


LOCAL_ONLY = pytest.mark.parametrize("store_url", ["local"], indirect=True)  # the filters and
# the path history are store-independent and run on both stores in tests/unit/test_sdk.py


@LOCAL_ONLY
def test_bundle_list_filters(cli, tmp_path):
    cli("repo", "create", "r")
    first = upload(cli, "r", folder(tmp_path, "one", {"a": b"1"}), "--label", "v1")
    bob = with_env(cli, DATAMONFS_CONFIG=str(tmp_path / "bob.toml"))
    bob("config", "create", "--name", "Bob", "--email", "bob@lab.net")
    second = upload(bob, "r", folder(tmp_path, "two-FIX", {"a": b"2"}))
    ids = lambda *args: [b["id"] for b in json.loads(cli("bundle", "list", "r", "--json",  # noqa
                                                          *args).out)]
    assert ids() == [second, first]
    assert ids("--author", "BOB@lab") == [second] and ids("--author", "ada") == [first]
    assert ids("--grep", "fix") == [second] and ids("--label", "v1") == [first]
    assert ids("--since", "1h") == [second, first] and ids("--until", "1h") == []
    later = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1))
    assert ids("--until", later.isoformat(), "--author", "Ada", "--branch", "main") == [first]
    assert ids("--since", later.date().isoformat()) == []
    text = cli("bundle", "list", "r", "--grep", "FIX").out
    assert text.startswith(second) and "Bob" in text and "(main)" in text
    one_line_error(cli("bundle", "list", "r", "--since", "last tuesday", expect=1),
                   "is not a time")
    one_line_error(cli("bundle", "list", "r", "--label", "zz", expect=1), "no label 'zz'")


def test_upload_input_and_lineage(cli, tmp_path):
    for repo in ("raw", "clean", "models"):
        cli("repo", "create", repo)
    a = upload(cli, "raw", folder(tmp_path, "a", {"data.csv": b"x\n1\n"}), "--label", "v1")
    b = upload(cli, "clean", folder(tmp_path, "b", {"clean.csv": b"x\n1\n"}), "--input", "raw:v1")
    c = upload(cli, "models", folder(tmp_path, "c", {"m.bin": b"m"}), "--input", "clean",
               "--input", f"raw:{a[:8]}")
    got = json.loads(cli("bundle", "get", f"clean:{b}", "--json").out)
    assert got["inputs"] == [{"repo": "raw", "bundle": a}] and "process" not in got
    assert f"inputs: raw:{a}" in cli("bundle", "get", "clean").out

    text = cli("lineage", f"clean:{b}").out.splitlines()
    assert text[0].startswith(f"clean:{b[:12]}") and "made from:" in text
    assert any(line.startswith(f"  raw:{a[:12]}") for line in text)
    assert any(line.startswith(f"  models:{c[:12]}") for line in text)
    doc = json.loads(cli("lineage", "raw:v1", "--down", "--json").out)
    assert doc["start"] == f"raw:{a}" and not doc["truncated"]
    assert {e["output"] for e in doc["edges"]} == {f"clean:{b}", f"models:{c}"}
    assert {x["id"] for x in doc["bundles"]} == {a, b, c}
    shallow = json.loads(cli("lineage", "models", "--up", "--depth", "1", "--json").out)
    assert {x["id"] for x in shallow["bundles"]} == {a, b, c} and shallow["truncated"]
    only_up = json.loads(cli("lineage", "clean", "--up", "--json").out)
    assert {x["id"] for x in only_up["bundles"]} == {a, b}
    dot = cli("lineage", "raw:v1", "--dot").out
    assert dot.startswith("digraph lineage {") and f'"raw:{a}" -> "clean:{b}";' in dot

    r = cli("bundle", "upload", "models", str(tmp_path / "c"), "-m", "x", "--input", "raw:nope",
            expect=1)
    one_line_error(r, "no label, branch or bundle 'nope'")
    assert len(json.loads(cli("bundle", "list", "models", "--json").out)) == 1
    one_line_error(cli("lineage", "raw:v1", "--dot", "--json", expect=2), "two formats")
    one_line_error(cli("lineage", "raw:zz", expect=1), "no label, branch or bundle 'zz'")


@LOCAL_ONLY
def test_log_of_a_path(cli, tmp_path):
    cli("repo", "create", "r")
    made = []
    for i, files in enumerate([{"t/x.csv": b"1", "o": b"a"}, {"t/x.csv": b"1", "o": b"b"},
                               {"t/x.csv": b"22", "o": b"b"}, {"o": b"b"}]):
        root = folder(tmp_path, f"s{i}", files)
        for path in root.rglob("*"):
            os.utime(path, ns=(1, 1))  # the same file twice is the same entry
        made.append(upload(cli, "r", root))
    lines = [line.split("\t") for line in cli("log", "r", "t/x.csv").out.splitlines()]
    assert [(fields[0], fields[2], fields[3]) for fields in lines] == [
        (made[3], "deleted", "-"), (made[2], "modified", "2"), (made[0], "added", "1")]
    doc = json.loads(cli("log", "r:main~1", "t/x.csv", "-n", "1", "--json").out)
    assert [(d["bundle"], d["change"], d["size"]) for d in doc] == [(made[2], "modified", 2)]
    assert cli("log", "r", "never/there").out == ""
    one_line_error(cli("log", "r", "../etc", expect=1), "would leave the bundle")


def test_commit_input_records_lineage(cli, daemon, tmp_path):
    cli("repo", "create", "raw")
    cli("repo", "create", "out")
    a = upload(cli, "raw", folder(tmp_path, "a", {"in.txt": b"in"}), "--label", "v1")
    mp = daemon.mountpoint()
    cli("mount", "--rw", "--new", "out", mp, "--branch", "main")
    with open(os.path.join(mp, "result.txt"), "wb") as f:
        f.write(b"made from raw\n")
    one_line_error(cli("commit", mp, "-m", "bad", "--input", "raw:zz", expect=1), "'zz'")
    made = cli("commit", mp, "-m", "result", "--input", "raw:v1").last_line
    got = json.loads(cli("bundle", "get", f"out:{made}", "--json").out)
    assert got["inputs"] == [{"repo": "raw", "bundle": a}]
    doc = json.loads(cli("lineage", "raw:v1", "--json").out)
    assert doc["edges"] == [{"input": f"raw:{a}", "output": f"out:{made}"}]
    cli("unmount", mp)
