"""Concurrent writers, killed uploads, unreadable files, config and store failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from support.files import write

from support.cli import CLI, DATAMONFS
from support.processes import free_port


def test_two_uploads_to_one_branch_at_once_both_stay_reachable(cli, tmp_path):
    cli("repo", "create", "r")
    procs = []
    for i in range(2):
        folder = tmp_path / f"d{i}"
        write(folder, "f.bin", os.urandom(2_000_000) + bytes([i]))
        procs.append(subprocess.Popen([DATAMONFS, "bundle", "upload", "r", str(folder), "-m", f"u{i}"],
                                      env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    ids = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        ids.append(out.strip().splitlines()[-1])
    log = [e["bundle"] for e in json.loads(cli("branch", "log", "r:main", "--json").out)]
    assert sorted(log) == sorted(ids)
    head = json.loads(cli("bundle", "get", "r", "--json").out)["id"]
    assert head in ids


def chunk_keys(store_url: str) -> set[str]:
    """The chunks of the store's packs whose index is stored (what writers can see)."""
    from datamonfs.core.packs import PackIndex
    from datamonfs.core.stores import open_store

    store = open_store(store_url)
    return {addr for key in store.list("packidx/")
            for addr, _, _ in PackIndex.parse(store.get(key), key.rsplit("/", 1)[1]).chunks}


def test_killed_upload_leaves_no_bundle_and_rerun_uploads_only_the_rest(cli, tmp_path):
    cli("repo", "create", "r")
    folder = tmp_path / "big"
    # Enough 32 MiB packs that the kill, sent once the first pack's index is visible, lands
    # with several packs still to go: with two packs the second could finish while the
    # emulator answered the poll, and the rerun had nothing left to upload.
    n_files = 160 if cli.store_url.startswith("gs://") else 300  # the local store is much faster
    for i in range(n_files):
        write(folder, f"f{i:02}.bin", os.urandom(1_000_000))
    proc = subprocess.Popen([DATAMONFS, "bundle", "upload", "r", str(folder), "-m", "killed"],
                            env=cli.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not chunk_keys(cli.store_url) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    time.sleep(0.3)  # let the store finish a request that was already on the wire
    before = len(chunk_keys(cli.store_url))
    assert before > 0
    assert cli("bundle", "list", "r").out == ""
    assert "no bundles" in cli("bundle", "get", "r", expect=1).err
    r = cli("bundle", "upload", "r", str(folder), "-m", "again")
    uploaded, _, total = r.err.split(";")[1].split()[:3]  # "N of M chunks uploaded"
    assert int(uploaded) == int(total) - before > 0
    assert len(chunk_keys(cli.store_url)) == int(total)


def test_unreadable_file_aborts_without_a_bundle(cli, tmp_path):
    """Root reads every file, so the upload runs without the capabilities that allow it."""
    cli("repo", "create", "r")
    folder = tmp_path / "d"
    write(folder, "ok.txt", b"fine")
    write(folder, "secret.txt", b"no", 0o000)
    r = subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search",
                        DATAMONFS, "bundle", "upload", "r", str(folder), "-m", "x"],
                       env=cli.env, capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    assert "cannot read secret.txt: Permission denied" in r.stderr
    assert cli("bundle", "list", "r").out == ""


def test_special_files_are_refused(cli, tmp_path):
    cli("repo", "create", "r")
    write(tmp_path / "d", "a", b"a")
    os.mkfifo(tmp_path / "d" / "pipe")
    r = cli("bundle", "upload", "r", str(tmp_path / "d"), "-m", "x", expect=1)
    assert "pipe is not a regular file, directory or symlink" in r.err


def test_missing_and_malformed_config(tmp_path):
    c = CLI(str(tmp_path / "home"), "file://" + str(tmp_path / "store"))
    r = c("repo", "create", "r", expect=1)
    assert "no author configured" in r.err and "datamonfs config create" in r.err
    assert c("repo", "list").out == ""  # reading needs no config
    cfg = os.path.join(c.env["XDG_CONFIG_HOME"], "datamonfs", "config.toml")
    os.makedirs(os.path.dirname(cfg))
    with open(cfg, "w") as f:
        f.write("name = [unclosed\n")
    r = c("repo", "list", expect=1)
    assert f"cannot read config {cfg}" in r.err
    with open(cfg, "w") as f:
        f.write('colour = "blue"\n')
    assert "unknown key" in c("repo", "list", expect=1).err
    c.env["DATAMONFS_CONFIG"] = str(tmp_path / "nope.toml")
    assert "does not exist" in c("repo", "list", expect=1).err


def test_default_store_needs_no_cloud(tmp_path):
    c = CLI(str(tmp_path / "home"), "")
    del c.env["DATAMONFS_STORE"]
    c("config", "create", "--name", "Ada", "--email", "a@x")
    c("repo", "create", "local")
    store = os.path.join(c.env["XDG_DATA_HOME"], "datamonfs", "store", "repo", "local")
    assert os.path.isfile(store)


def test_unreachable_store_exits_3(tmp_path):
    c = CLI(str(tmp_path / "home"), "gs://bucket/prefix")
    c.env["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{free_port()}"
    c.env["DATAMONFS_STORE_TIMEOUT"] = "1"
    r = c("repo", "list", expect=3)
    assert "gs://bucket/prefix" in r.err and r.err.count("\n") == 1
    c.env["DATAMONFS_STORE"] = "s3://x"
    assert "unsupported store URL" in c("repo", "list", expect=1).err
