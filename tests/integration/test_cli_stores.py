"""Which store a command uses, and how a store that is missing, mistyped or unreachable
fails: one line, the documented exit status, in seconds (issue 18, bugs 1-5 and 15)."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from support.cli import DATAMONFS, on_terminal, one_line_error, with_env
from support.gcs import make_bucket, start_emulator
from support.processes import free_port, stop_process
from support.files import write


def test_one_daemon_serves_each_request_from_the_store_it_names(cli, daemon, tmp_path):
    """Bug 1: the daemon started with store A mounts what store B holds when the CLI uses B."""
    folder = tmp_path / "d"
    write(folder, "a.txt", b"from store A")
    cli("repo", "create", "o")
    cli("bundle", "upload", "o", str(folder), "-m", "x")
    other = with_env(cli, DATAMONFS_STORE="file://" + str(tmp_path / "s2"))
    write(folder, "a.txt", b"from store B")
    other("repo", "create", "o")
    other("bundle", "upload", "o", str(folder), "-m", "x")
    other("repo", "create", "only-b")
    other("bundle", "upload", "only-b", str(folder), "-m", "x")

    mp_b = daemon.mountpoint("b")
    other("mount", "o", mp_b)
    mp_a = daemon.mountpoint("a")
    cli("mount", "o", mp_a)
    assert open(os.path.join(mp_b, "a.txt"), "rb").read() == b"from store B"
    assert open(os.path.join(mp_a, "a.txt"), "rb").read() == b"from store A"
    other("mount", "only-b", daemon.mountpoint("c"))
    r = cli("mount", "only-b", daemon.mountpoint("d"), expect=1)
    one_line_error(r, "no repo named 'only-b'")
    records = {os.path.basename(m["mountpoint"]): m for m in daemon.mounts()}
    assert records["b"]["store"]["url"] == "file://" + str(tmp_path / "s2")
    assert records["a"]["store"]["url"] == cli.store_url
    # Asking again for a mount that is there, from another store, names both stores.
    r = cli("mount", "only-b", os.path.join(daemon.root, "c"), expect=1)
    one_line_error(r, "file://" + str(tmp_path / "s2"), cli.store_url)


def test_writable_mount_commits_to_its_own_store(cli, daemon, tmp_path):
    folder = tmp_path / "d"
    write(folder, "a.txt", b"a")
    other = with_env(cli, DATAMONFS_STORE="file://" + str(tmp_path / "s2"))
    other("repo", "create", "o")
    other("bundle", "upload", "o", str(folder), "-m", "x")
    mp = daemon.mountpoint()
    other("mount", "--rw", "o", mp)
    with open(os.path.join(mp, "b.txt"), "wb") as f:
        f.write(b"b")
    r = cli("commit", mp, "-m", "wrong store", expect=1)
    one_line_error(r, "is a mount of store file://" + str(tmp_path / "s2"), cli.store_url)
    bundle = other("commit", mp, "-m", "ok").last_line
    assert json.loads(other("bundle", "get", "o", "--json").out)["id"] == bundle
    other("unmount", mp)


@pytest.mark.parametrize("store_url", ["local"], indirect=True)
def test_relative_store_paths_are_made_absolute(cli, daemon, tmp_path):
    """Bug 2: `config create --store relstore` and DATAMONFS_STORE=relstore mean the
    directory below the working directory, for the CLI and the daemon alike."""
    work = tmp_path / "work"
    (work / "relstore").mkdir(parents=True)
    plain = with_env(cli, DATAMONFS_STORE=None)
    plain("config", "create", "--name", "Ada", "--email", "a@x", "--store", "relstore",
          cwd=str(work))
    shown = json.loads(plain("config", "show", "--json", cwd="/").out)
    assert shown["settings"]["store"] == "file://" + str(work / "relstore")
    folder = tmp_path / "d"
    write(folder, "a.txt", b"a")
    plain("repo", "create", "o", cwd="/")
    plain("bundle", "upload", "o", str(folder), "-m", "x", cwd=str(tmp_path))
    assert (work / "relstore" / "repo" / "o").is_file()
    mp = daemon.mountpoint()
    plain("mount", "o", mp, cwd=str(tmp_path))
    assert os.listdir(mp) == ["a.txt"]
    assert not os.path.exists("/relstore")

    (work / "rel2").mkdir()
    rel = with_env(cli, DATAMONFS_STORE="rel2")
    shown = json.loads(rel("config", "show", "--json", cwd=str(work)).out)
    assert shown["settings"]["store"] == "file://" + str(work / "rel2")
    assert shown["sources"]["store"] == "environment"


def test_missing_store_is_one_line_exit_3_and_config_create_checks_it(cli, tmp_path):
    """Bug 3 and 4: a missing bucket or directory, everywhere; `config create` refuses it
    unless --no-check; reading never creates a local store."""
    if cli.store_url.startswith("gs://"):
        missing = "gs://no-such-bucket-" + os.urandom(4).hex() + "/dm"
        words = ("does not exist", "no-such-bucket")
    else:
        missing = "file://" + str(tmp_path / "typo" / "store")
        words = ("does not exist", str(tmp_path / "typo"))
    plain = with_env(cli, DATAMONFS_STORE=None)
    cli("repo", "create", "exists")  # the fixture's store exists: config create takes it
    plain("config", "create", "--name", "Ada", "--email", "a@x", "--store", cli.store_url)
    assert json.loads(plain("repo", "list", "--json").out)[0]["name"] == "exists"
    r = plain("config", "create", "--name", "Ada", "--email", "a@x", "--store", missing,
              expect=3)
    one_line_error(r, *words, "--no-check")
    plain("config", "create", "--name", "Ada", "--email", "a@x", "--store", missing,
          "--no-check")
    for args in (("repo", "list"), ("repo", "get", "x"), ("bundle", "get", "x:v1"),
                 ("bundle", "list", "x"), ("label", "list", "x")):
        one_line_error(plain(*args, expect=3), *words)
    assert not os.path.exists(tmp_path / "typo")
    if missing.startswith("gs://"):
        one_line_error(plain("repo", "create", "x", expect=3), *words)
    else:  # commands that write may create a local store
        plain("repo", "create", "x")
        assert os.path.isfile(tmp_path / "typo" / "store" / "repo" / "x")


def test_refused_connection_fails_fast_in_one_line(tmp_path):
    """Bug 5: a closed port fails within seconds, not after the store timeout."""
    from support.cli import CLI

    port = free_port()
    c = CLI(str(tmp_path / "home"), "gs://bucket/dm")
    c.env.update(STORAGE_EMULATOR_HOST=f"http://127.0.0.1:{port}", DATAMONFS_STORE_TIMEOUT="60")
    start = time.monotonic()
    r = c("repo", "list", expect=3)
    assert time.monotonic() - start < 15  # the store timeout is 60 s
    one_line_error(r, "gs://bucket/dm", "connection refused")
    assert len(r.err) < 250, r.err
    assert "urllib3" not in r.err and "HTTPConnectionPool" not in r.err


@pytest.fixture
def paused_emulator():
    """An emulator of its own (the module's is shared), with a bucket, stopped (SIGSTOP):
    it accepts connections and never answers."""
    proc, host = start_emulator()
    try:
        saved = os.environ.get("STORAGE_EMULATOR_HOST")
        bucket = make_bucket(host)
        if saved is None:
            os.environ.pop("STORAGE_EMULATOR_HOST")
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = saved
        proc.send_signal(signal.SIGSTOP)
        yield host, bucket
    finally:
        proc.send_signal(signal.SIGCONT)
        stop_process(proc)


def test_store_that_does_not_answer_fails_at_the_timeout_in_one_line(tmp_path, paused_emulator):
    from support.cli import CLI

    host, bucket = paused_emulator
    c = CLI(str(tmp_path / "home"), f"gs://{bucket}/dm")
    c.env.update(STORAGE_EMULATOR_HOST=host, DATAMONFS_STORE_TIMEOUT="3")
    start = time.monotonic()
    r = c("repo", "list", expect=3)
    took = time.monotonic() - start
    assert 3 <= took < 15, took
    one_line_error(r, f"gs://{bucket}/dm", "did not answer within 3s",
                   "DATAMONFS_STORE_TIMEOUT")
    assert len(r.err) < 250, r.err


def test_slow_store_says_it_retries_on_a_terminal(tmp_path, paused_emulator):
    from support.cli import CLI

    host, bucket = paused_emulator
    c = CLI(str(tmp_path / "home"), f"gs://{bucket}/dm")
    c.env.update(STORAGE_EMULATOR_HOST=host, DATAMONFS_STORE_TIMEOUT="5")
    code, shown = on_terminal([DATAMONFS, "repo", "list"], c.env)
    assert code == 3
    assert b"is not answering" in shown and b"retrying for up to" in shown, shown


def test_credential_file_is_checked_and_kept(cli, daemon, tmp_path):
    """Item 15: `config create --credential FILE`, checked at once, kept in the config and
    sent with every request that opens a store."""
    plain = with_env(cli, DATAMONFS_STORE=None)
    r = plain("config", "create", "--name", "A", "--email", "a@x", "--credential",
              str(tmp_path / "none.json"), expect=1)
    one_line_error(r, "cannot read credential file", "none.json")
    (tmp_path / "bad.json").write_text('{"type": "something"}')
    r = plain("config", "create", "--name", "A", "--email", "a@x", "--credential",
              str(tmp_path / "bad.json"), expect=1)
    one_line_error(r, "not a Google credentials file")
    (tmp_path / "notjson.json").write_text("{")
    one_line_error(plain("config", "set", "credential", str(tmp_path / "notjson.json"),
                         expect=1), "is not JSON")
    good = tmp_path / "adc.json"
    good.write_text(json.dumps({"type": "authorized_user", "client_id": "c",
                                "client_secret": "s", "refresh_token": "r"}))
    plain("config", "create", "--name", "A", "--email", "a@x", "--credential", str(good))
    assert json.loads(plain("config", "show", "--json").out)["settings"]["credential"] == str(good)
    folder = tmp_path / "d"
    write(folder, "a.txt", b"a")
    cli("repo", "create", "o")
    cli("bundle", "upload", "o", str(folder), "-m", "x")
    mp = daemon.mountpoint()
    cli("mount", "o", mp)
    assert daemon.mounts()[0]["store"]["credential"] == str(good)
