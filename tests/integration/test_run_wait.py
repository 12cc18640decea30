"""`datamonfs run` through the user's own daemon, and `datamonfs wait` (the node daemon's
side of both is in test_node.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from support.cli import DATAMONFS
from support.files import write
from support.processes import wait_for


@pytest.fixture
def repos(cli, tmp_path):
    write(tmp_path / "data", "a.txt", b"alpha\n")
    cli("repo", "create", "imagery")
    cli("repo", "create", "results")
    return cli("bundle", "upload", "imagery", str(tmp_path / "data"), "-m", "v1", "--label",
               "v1").last_line


def _bundles(cli, repo: str) -> list[dict]:
    return json.loads(cli("bundle", "list", repo, "--json").out)


def test_success_commits_the_outputs_with_label_and_provenance(cli, daemon, repos, tmp_path):
    inp, out = str(tmp_path / "job" / "in"), str(tmp_path / "job" / "out")
    r = cli("run", "--input", f"imagery:v1={inp}", "--output", f"results={out}", "--label",
            "cleaned", "--", "sh", "-c", f"tr a-z A-Z < {inp}/a.txt > {out}/A.txt; echo ran")
    assert r.out == "ran\n"  # CMD's own output, nothing else on stdout
    got = json.loads(cli("bundle", "get", "results:cleaned", "--json").out)
    assert got["inputs"] == [{"repo": "imagery", "bundle": repos}]
    assert got["process"]["command"] == ["sh", "-c", f"tr a-z A-Z < {inp}/a.txt > {out}/A.txt; "
                                         "echo ran"]
    assert got["message"].startswith("datamonfs run: sh -c") and got["files"] == 1
    text = cli("bundle", "get", "results:cleaned").out
    assert f"inputs: imagery:{repos}" in text and "process: sh -c " in text
    assert not os.path.exists(tmp_path / "job")  # the directories run made are gone
    assert json.loads(cli("mounts", "--json").out) == []
    # The next run on the branch starts from its head and records it as the parent.
    cli("run", "--output", f"results:main={out}", "-m", "second", "--", "sh", "-c",
        f"test -f {out}/A.txt && echo more > {out}/B.txt")
    second = json.loads(cli("bundle", "get", "results:main", "--json").out)
    assert second["parents"] == [got["id"]] and second["files"] == 2
    assert "inputs" not in second  # no inputs: the member is absent, not empty


def test_failure_returns_the_status_and_discards_or_keeps(cli, daemon, repos, tmp_path):
    out = str(tmp_path / "out")
    r = cli("run", "--output", f"results={out}", "--", "sh", "-c",
            f"echo half > {out}/half.txt; exit 3", expect=3)
    assert _bundles(cli, "results") == [] and not os.path.exists(out)
    assert json.loads(cli("mounts", "--json").out) == []
    r = cli("run", "--output", f"results={out}", "--on-failure", "keep", "--", "sh", "-c",
            f"echo half > {out}/half.txt; exit 4", expect=4)
    assert "kept" in r.err and _bundles(cli, "results") == []
    [kept] = json.loads(cli("mounts", "--json").out)
    assert (kept["mode"], kept["state"]) == ("rw", "stale") and "kept" in kept["reason"]
    # Mounting the same branch at the same path resumes what was staged.
    os.makedirs(out, exist_ok=True)
    cli("mount", "--rw", "results:main", out)
    with open(os.path.join(out, "half.txt")) as f:
        assert f.read() == "half\n"
    cli("unmount", out)
    assert [b["files"] for b in _bundles(cli, "results")] == [1]
    cli("run", "--", "no-such-command-here", expect=127)


def test_sigterm_reaches_cmd_and_nothing_staged_is_lost(cli, daemon, repos, tmp_path):
    out, ready = str(tmp_path / "out"), str(tmp_path / "ready")
    script = (f"trap 'echo term > {out}/term.txt; exit 5' TERM; echo data > {out}/data.txt; "
              f"touch {ready}; while true; do sleep 0.1; done")
    proc = subprocess.Popen([DATAMONFS, "run", "--output", f"results={out}", "--", "sh", "-c",
                             script], env=cli.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: os.path.exists(ready) or proc.poll() is not None, 60, what="CMD")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 5, err  # CMD's status, after it handled the signal
    assert _bundles(cli, "results") == []  # not committed: CMD failed
    os.makedirs(out, exist_ok=True)  # interrupted: kept, whatever --on-failure said
    cli("mount", "--rw", "results:main", out)
    assert sorted(os.listdir(out)) == ["data.txt", "term.txt"]
    cli("unmount", out, "--discard")


def test_bad_specs_are_usage_errors(cli, tmp_path):
    for args, says in ((["--input", "imagery:v1"], "write REPO:REF=PATH"),
                       (["--output", "results:main="], "write REPO:BRANCH=PATH"),
                       (["--input", "bad..name:v1=/x"], "invalid repo name"),
                       (["--input", "a:b=/x", "--output", "c=/x"], "two mounts at one PATH")):
        r = cli("run", *args, "--", "true", expect=2)
        assert says in r.err.strip().splitlines()[-1]
    cli("run", "--label", "no/slash", "--", "true", expect=1)


def test_wait_is_released_soon_after_the_label_is_set(cli, repos):
    waiter = subprocess.Popen([DATAMONFS, "wait", "imagery:ready", "--timeout", "2m"],
                              env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        time.sleep(1.5)  # the waiter is polling by now
        assert waiter.poll() is None
        cli("label", "set", "imagery:v1", "ready")
        set_at = time.monotonic()
        out, err = waiter.communicate(timeout=30)
        released_after = time.monotonic() - set_at
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert (waiter.returncode, out.strip()) == (0, repos), err
    assert released_after < 2.5  # functional: "within about a second" of the label


def test_wait_times_out_with_one_line_and_refuses_bad_refs(cli, repos):
    r = cli("wait", "imagery:never", "--timeout", "1s", expect=1)
    assert r.err.strip() == ("datamonfs: error: label 'never' of repo 'imagery' did not "
                             "appear within 1s")
    assert r.out == ""
    cli("wait", "imagery", expect=2)
    cli("wait", "imagery:v1", "--timeout", "soon", expect=2)
    cli("wait", "bad..repo:x", "--timeout", "1s", expect=1)
    # A label that exists already: at once.
    assert cli("wait", "imagery:v1", "--timeout", "0").last_line == repos
