"""The CLI for repos, bundles, labels and branches, on both stores."""

from __future__ import annotations

import json
import os

import pytest
from support.files import snapshot, write


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    write(root, "a.txt", b"hello\n")
    write(root, "sub/big.bin", os.urandom(3_000_000), 0o600)
    write(root, "sub/deeper/c.csv", b"x,y\n1,2\n", 0o755)
    os.symlink("../a.txt", root / "sub" / "link")
    os.mkdir(root / "empty")
    return root


def upload(cli, repo, folder, *extra):
    return cli("bundle", "upload", repo, str(folder), "-m", "msg", *extra).last_line


def test_repo_create_list_get(cli):
    cli("repo", "create", "imagery", "-d", "satellite tiles")
    cli("repo", "create", "other")
    repos = json.loads(cli("repo", "list", "--json").out)
    assert [r["name"] for r in repos] == ["imagery", "other"]
    got = json.loads(cli("repo", "get", "imagery", "--json").out)
    assert got["description"] == "satellite tiles" and got["author"] == "Ada"
    r = cli("repo", "create", "imagery", expect=1)
    assert "already exists" in r.err and r.err.count("\n") == 1


def test_upload_list_get_files_download(cli, data, tmp_path):
    cli("repo", "create", "imagery")
    bundle_id = upload(cli, "imagery", data, "--label", "v1")
    assert len(bundle_id) == 64
    listed = json.loads(cli("bundle", "list", "imagery", "--json").out)
    assert [b["id"] for b in listed] == [bundle_id]
    b = listed[0]
    assert (b["files"], b["bytes"], b["parents"], b["author"], b["message"]) == (
        4, 6 + 3_000_000 + 8 + 0, [], "Ada", "msg")
    for ref in ("imagery", "imagery:main", "imagery:v1", f"imagery:{bundle_id[:8]}", f"imagery:{bundle_id}"):
        assert json.loads(cli("bundle", "get", ref, "--json").out)["id"] == bundle_id
    files = json.loads(cli("bundle", "files", "imagery:v1", "--json").out)
    assert [f["path"] for f in files] == ["a.txt", "sub/big.bin", "sub/deeper/c.csv", "sub/link"]
    assert files[3]["target"] == "../a.txt"
    sub = json.loads(cli("bundle", "files", "imagery:v1", "--filter", "sub/deeper", "--json").out)
    assert [f["path"] for f in sub] == ["sub/deeper/c.csv"]

    out = tmp_path / "out"
    cli("bundle", "download", "imagery:v1", str(out))
    assert snapshot(out) == snapshot(data)

    r = cli("bundle", "download", "imagery:v1", str(out), expect=1)
    assert "not empty" in r.err and "--resume" in r.err
    (out / "a.txt").write_bytes(b"changed")
    cli("bundle", "download", "imagery:v1", str(out), "--force")
    assert (out / "a.txt").read_bytes() == b"hello\n"

    only = tmp_path / "only"
    cli("bundle", "download", "imagery:v1", str(only), "--filter", "*.csv")
    assert sorted(snapshot(only)) == ["sub", "sub/deeper", "sub/deeper/c.csv"]


def test_versions_diff_dedup_and_history(cli, data):
    cli("repo", "create", "r")
    first = upload(cli, "r", data, "--label", "v1")
    again = cli("bundle", "upload", "r", str(data), "-m", "same", "--allow-empty")
    assert "0 of" in again.err  # nothing new to upload
    write(data, "a.txt", b"hello world\n")
    write(data, "new.txt", b"new")
    os.unlink(data / "sub" / "deeper" / "c.csv")
    third = upload(cli, "r", data, "--label", "v2")

    diff = json.loads(cli("bundle", "diff", "r:v1", "r:v2", "--json").out)
    assert diff == [
        {"path": "a.txt", "change": "modified", "old_size": 6, "new_size": 12},
        {"path": "new.txt", "change": "added", "old_size": None, "new_size": 3},
        {"path": "sub/deeper/c.csv", "change": "deleted", "old_size": 8, "new_size": None},
    ]
    assert cli("bundle", "diff", "r:v1", f"r:{first[:6]}").out == ""

    listed = [b["id"] for b in json.loads(cli("bundle", "list", "r", "--json").out)]
    assert listed[0] == third and listed[-1] == first and len(listed) == 3
    head = json.loads(cli("bundle", "get", "r", "--json").out)
    assert head["id"] == third and len(head["parents"]) == 1

    log = json.loads(cli("branch", "log", "r:main", "--json").out)
    assert [e["bundle"] for e in log] == listed

    cli("label", "set", f"r:{first}", "v2")
    hist = json.loads(cli("label", "get", "r", "v2", "--json").out)
    assert [e["bundle"] for e in hist] == [first, third]
    labels = json.loads(cli("label", "list", "r", "--json").out)
    assert {e["name"]: e["bundle"] for e in labels} == {"v1": first, "v2": first}


def test_branches(cli, data):
    cli("repo", "create", "r")
    first = upload(cli, "r", data)
    cli("branch", "create", "r:main", "exp")
    write(data, "exp.txt", b"experiment")
    on_exp = upload(cli, "r", data, "--branch", "exp")
    assert json.loads(cli("bundle", "get", "r:main", "--json").out)["id"] == first
    assert json.loads(cli("bundle", "get", "r:exp", "--json").out)["id"] == on_exp
    assert json.loads(cli("bundle", "get", "r:exp", "--json").out)["parents"] == [first]
    branches = json.loads(cli("branch", "list", "r", "--json").out)
    assert {b["name"]: b["bundle"] for b in branches} == {"main": first, "exp": on_exp}
    only_exp = json.loads(cli("bundle", "list", "r", "--branch", "exp", "--json").out)
    assert [b["id"] for b in only_exp] == [on_exp, first]
    r = cli("branch", "create", "r:main", "exp", expect=1)
    assert "already exists" in r.err


@pytest.mark.parametrize("args, message", [
    (("repo", "create", "bad/name"), "invalid repo name"),
    (("repo", "create", ".hidden"), "invalid repo name"),
    (("repo", "create", "a..b"), "invalid repo name"),
    (("repo", "get", "nope"), "no repo named 'nope'"),
    (("bundle", "get", "r:nothing"), "no label, branch or bundle 'nothing'"),
    (("bundle", "get", "r"), "no bundles on branch main"),
    (("bundle", "get", "r:"), "nothing after ':'"),
    (("label", "get", "r", "v9"), "no label 'v9'"),
    (("branch", "log", "r:dev"), "no branch 'dev'"),
    (("bundle", "upload", "r", "/does/not/exist", "-m", "x"), "no directory"),
])
def test_user_errors_exit_1_with_one_line(cli, args, message):
    cli("repo", "create", "r")
    r = cli(*args, expect=1)
    assert message in r.err
    assert r.err.count("\n") == 1 and r.err.startswith("datamonfs: error: ")


def test_invalid_label_and_branch_names(cli, data):
    cli("repo", "create", "r")
    r = cli("bundle", "upload", "r", str(data), "-m", "x", "--label", "no good", expect=1)
    assert "invalid label name" in r.err
    r = cli("bundle", "upload", "r", str(data), "-m", "x", "--branch", "-x", expect=1)
    assert "invalid branch name" in r.err
    assert json.loads(cli("bundle", "list", "r", "--json").out) == []


@pytest.mark.parametrize("store_url", ["local"], indirect=True)  # ~300 objects: too many for the emulator
def test_ambiguous_bundle_prefix(cli):
    """Bundle records are written straight to the store until two ids share a 4-digit prefix."""
    from datamonfs.core.model import Bundle
    from datamonfs.core.repository import Repository
    from datamonfs.core.stores import open_store

    cli("repo", "create", "r")
    repository = Repository(open_store(cli.store_url))
    seen: dict[str, str] = {}
    n = 0
    while True:
        n += 1
        b = repository.write_bundle(Bundle("r", "0" * 64, (), f"m{n}", "A", "a@x", n, 0, 0))
        if b.id[:4] in seen:
            break
        seen[b.id[:4]] = b.id
    r = cli("bundle", "get", f"r:{b.id[:4]}", expect=1)
    assert "matches 2 bundles" in r.err and "give more characters" in r.err
    assert json.loads(cli("bundle", "get", f"r:{b.id[:12]}", "--json").out)["id"] == b.id
    assert "needs at least 4 hex digits" in cli("bundle", "get", f"r:{b.id[:3]}", expect=1).err


def test_usage_errors_exit_2(cli):
    assert cli("bundle", "upload", "r", expect=2).code == 2
    assert cli("nonsense", expect=2).code == 2
