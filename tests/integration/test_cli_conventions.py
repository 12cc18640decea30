"""The conventions git, DVC and lakectl users expect (issue 18, items 7-10, 13, 14, 16)."""

from __future__ import annotations

import json
import os

import pytest
from support.cli import one_line_error, with_env
from support.files import write



@pytest.fixture
def repo(cli, tmp_path):
    """Repo r with three bundles on main (v1, then two more), labelled v1 and prod."""
    folder = tmp_path / "data"
    ids = []
    for n in range(3):
        write(folder, "tables/2024/a.csv", b"a,%d\n" % n)
        write(folder, "tables/b.csv", b"b\n")
        write(folder, "readme.txt", b"read me\n")
        label = ["--label", "v1"] if n == 0 else []
        ids.append(cli("bundle", "upload", "r", str(folder), "-m", f"version {n}",
                       *label).last_line)
    cli("label", "set", f"r:{ids[2]}", "prod")
    return folder, ids


@pytest.fixture(autouse=True)
def _repo_created(cli):
    cli("repo", "create", "r")


def test_label_and_branch_names_never_collide(cli, repo):
    folder, ids = repo
    one_line_error(cli("branch", "create", "r:main", "v1", expect=1),
                   "has a label named 'v1'", "choose another")
    one_line_error(cli("label", "set", "r:v1", "main", expect=1), "has a branch named 'main'")
    one_line_error(cli("bundle", "upload", "r", str(folder), "-m", "x", "--branch", "prod",
                       expect=1), "has a label named 'prod'")
    one_line_error(cli("bundle", "upload", "r", str(folder), "-m", "x", "--label", "main",
                       expect=1), "has a branch named 'main'")
    assert [b["id"] for b in json.loads(cli("bundle", "list", "r", "--json").out)] == ids[::-1]


def test_label_set_says_what_it_moves_and_records_no_change(cli, repo):
    _, ids = repo
    r = cli("label", "set", f"r:{ids[1]}", "prod")
    assert f"prod: {ids[2][:12]} → {ids[1][:12]}" in r.err and r.last_line == ids[1]
    r = cli("label", "set", f"r:{ids[1]}", "prod")
    assert "already names" in r.err
    assert len(json.loads(cli("label", "get", "r", "prod", "--json").out)) == 2
    r = cli("label", "set", "prod", "r:v1", expect=2)
    one_line_error(r, "did you mean 'datamonfs label set r:v1 prod'")
    r = cli("branch", "create", "dev", "r:v1", expect=2)
    one_line_error(r, "did you mean 'datamonfs branch create r:v1 dev'")


def test_refs_ancestors_prefixes_and_suggestions(cli, repo):
    _, ids = repo
    get = lambda ref: json.loads(cli("bundle", "get", ref, "--json").out)["id"]  # noqa: E731
    assert get("r~1") == ids[1] and get("r:main~2") == ids[0] and get("r:main~") == ids[1]
    assert get(f"r:{ids[2][:6]}~1~1") == ids[0] and get("r:prod~2") == ids[0]
    one_line_error(cli("bundle", "get", "r~3", expect=1), "has no parent")
    one_line_error(cli("bundle", "get", f"r:{ids[0][:3]}", expect=1),
                   "needs at least 4 hex digits")
    one_line_error(cli("bundle", "get", "r:v2", expect=1), "did you mean 'v1' (label)?")
    one_line_error(cli("bundle", "get", "r:mian", expect=1), "did you mean 'main' (branch)?")
    one_line_error(cli("bundle", "get", "r:zzzzzz", expect=1), "datamonfs label list r")
    assert cli("bundle", "diff", "r~2", "r:v1", "--exit-code").code == 0


def test_json_and_text_agree_on_ids_sizes_modes_and_words(cli, repo, tmp_path):
    folder, ids = repo
    os.chmod(folder / "readme.txt", 0o600)
    b = cli("bundle", "upload", "r", str(folder), "-m", "modes", "--json")
    doc = json.loads(b.out)
    assert doc["new_bundle"] and doc["files"] == 3 and doc["bytes"] == 4 + 2 + 8
    assert set(doc) >= {"bundle", "chunks", "chunks_uploaded", "bytes_uploaded", "branch"}
    files = {f["path"]: f for f in json.loads(cli("bundle", "files", "r", "--json").out)}
    assert files["readme.txt"]["mode"] == "600" and files["tables/b.csv"]["mode"] == "644"
    text = cli("bundle", "files", "r").out.splitlines()
    assert "readme.txt\t8\t600\t" in "\n".join(text)
    shown = cli("bundle", "get", "r").out
    assert f"parents: {ids[2]}\n" in shown and "[" not in shown
    os.unlink(folder / "tables" / "b.csv")
    cli("bundle", "upload", "r", str(folder), "-m", "gone")
    diff = cli("bundle", "diff", "r~1", "r", "--exit-code", expect=1)
    assert diff.out == "deleted\ttables/b.csv\t2\n"
    assert diff.err == "0 added, 0 modified, 1 deleted\n"
    assert json.loads(cli("bundle", "diff", "r~1", "r", "--json").out)[0]["change"] == "deleted"
    assert cli("-q", "bundle", "diff", "r~1", "r").err == ""


def test_uploading_the_same_folder_makes_no_bundle(cli, repo):
    folder, ids = repo
    r = cli("bundle", "upload", "r", str(folder), "-m", "again", "--label", "same")
    assert r.last_line == ids[2] and "no bundle made" in r.err
    assert json.loads(cli("bundle", "get", "r:same", "--json").out)["id"] == ids[2]
    doc = json.loads(cli("bundle", "upload", "r", str(folder), "-m", "x", "--json").out)
    assert doc["bundle"] == ids[2] and doc["new_bundle"] is False
    forced = cli("bundle", "upload", "r", str(folder), "-m", "x", "--allow-empty").last_line
    assert forced != ids[2]
    assert len(json.loads(cli("bundle", "list", "r", "--json").out)) == 4


def test_one_glob_filter_everywhere(cli, repo, tmp_path):
    def listed(pattern):
        rows = json.loads(cli("bundle", "files", "r", "--filter", pattern, "--json").out)
        return [f["path"] for f in rows]

    assert listed("tables/*") == ["tables/2024/a.csv", "tables/b.csv"]
    assert listed("tables/*.csv") == ["tables/b.csv"]
    assert listed("tables/**/*.csv") == ["tables/2024/a.csv", "tables/b.csv"]
    assert listed("*.csv") == ["tables/2024/a.csv", "tables/b.csv"]
    assert listed("read?e.*") == ["readme.txt"]
    assert listed("nothing/**") == []
    out = tmp_path / "out"
    cli("bundle", "download", "r", str(out), "--filter", "tables/*.csv")
    assert sorted(os.listdir(out / "tables")) == ["b.csv"]
    cli("cache", "prefetch", "r", "--filter", "**/a.csv")
    r = cli("bundle", "files", "r", "--prefix", "tables", expect=2)
    one_line_error(r, "No such option")


def test_cat_config_list_decorations_and_branch_log(cli, repo, tmp_path):
    _, ids = repo
    cat = cli("cat", "r:v1", "tables/2024/a.csv")
    assert cat.out == "a,0\n"
    one_line_error(cli("cat", "r", "tables", expect=1), "is a directory")
    one_line_error(cli("cat", "r", "nope.txt", expect=1), "no file 'nope.txt'")

    listed = cli("bundle", "list", "r", "-n", "2").out.splitlines()
    assert len(listed) == 2 and listed[0].endswith("(main, prod)")
    assert listed[1].startswith(ids[1]) and "(" not in listed[1].split("\t")[-1]
    rows = json.loads(cli("bundle", "list", "r", "--json").out)
    assert rows[0]["branches"] == ["main"] and rows[0]["labels"] == ["prod"]
    assert rows[2]["labels"] == ["v1"]
    log = json.loads(cli("branch", "log", "r:main", "--json").out)
    assert [e["message"] for e in log] == ["version 2", "version 1", "version 0"]
    assert cli("branch", "log", "r").out.splitlines()[0].endswith("\tversion 2")

    cli("config", "set", "cache_size", str(64 << 20))
    cli("config", "create", "--name", "Bea", "--email", "b@x")
    shown = json.loads(cli("config", "show", "--json").out)
    assert shown["settings"]["cache_size"] == 64 << 20  # config create kept it
    assert shown["settings"]["name"] == "Bea" and shown["sources"]["name"] == "file"
    one_line_error(cli("config", "set", "cache_size", "12", expect=1), "smaller than one chunk")
    one_line_error(cli("config", "set", "commit_on_unmount", "maybe", expect=1), "true or false")
    assert "cache_size = 67108864\t(file)" in cli("config", "show").out


def test_daemon_status_and_stop_when_none_runs(cli, tmp_path):
    cli.env["DATAMONFS_SOCKET"] = str(tmp_path / "no.sock")
    r = cli("daemon", "status", "--json", expect=3)
    assert json.loads(r.out) == {"running": False}
    one_line_error(r, "no datamonfs daemon is running")
    r = cli("daemon", "stop")
    assert "nothing to stop" in r.err


def test_errors_are_one_line_with_agreeing_exit_codes(cli, tmp_path):
    (tmp_path / "file.txt").write_text("x")
    one_line_error(cli("bundle", "upload", "r", str(tmp_path / "file.txt"), "-m", "x",
                       expect=1), "is not a directory")
    one_line_error(cli("bundle", "upload", "r", str(tmp_path / "missing"), "-m", "x",
                       expect=1), "no directory")
    for args, words in ((("bundle", "upload", "r"), ("Missing argument", "--help")),
                        (("nonsense",), ("No such command",)),
                        (("bundle", "list", "r", "--bogus"), ("No such option",)),
                        (("bundle", "list", "r", "-n", "x"), ("not a valid integer",))):
        one_line_error(cli(*args, expect=2), *words)
    assert cli("--help").code == 0 and "DATAMONFS_STORE_TIMEOUT" in cli("--help").out


def test_completion_offers_repos_and_refs(cli, repo):
    env = {"_DATAMONFS_COMPLETE": "bash_complete", "COMP_WORDS": "datamonfs bundle get r",
           "COMP_CWORD": "3"}
    got = with_env(cli, **env)().out
    assert "r:" in got
    env["COMP_WORDS"] = "datamonfs bundle get r:p"
    assert "r:prod" in with_env(cli, **env)().out
