"""The node daemon with pods, for real: Linux namespaces, a shared mounts directory, the
socket, the allow-list, SIGTERM, a restart (docs/KUBERNETES.md).

Each pod is a process under `unshare --mount --net --propagation slave` that mounts the
node's ROOT/mounts as a HostToContainer hostPath volume would (tests/support/node.py);
it reaches the store only through the node daemon.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import uuid

import pytest

from support.files import write
from support.gcs import make_bucket
from support.node import NodeDaemon, Pod
from support.processes import mounts_under, wait_for


@pytest.fixture
def node(tmp_path):
    n = NodeDaemon(str(tmp_path), "file://" + str(tmp_path / "store"))
    try:
        yield n
    finally:
        n.cleanup()
    assert "Traceback" not in n.log_text(), n.log_text()[-3000:]


@pytest.fixture
def imagery(node, tmp_path):
    return upload_imagery(node, tmp_path)


def upload_imagery(node, tmp_path) -> str:
    """Repo imagery with label v1 (two files), repo results, uploaded by the admin."""
    write(tmp_path / "data", "a.txt", b"alpha\n")
    write(tmp_path / "data", "sub/b.bin", os.urandom(300_000))
    node.admin("repo", "create", "imagery")
    node.admin("repo", "create", "results")
    node.admin("repo", "create", "secret")
    return node.admin("bundle", "upload", "imagery", str(tmp_path / "data"), "-m", "v1",
                      "--label", "v1").last_line


def _pod_mount(pod: Pod, ref: str, name: str, *extra: str) -> str:
    return pod.cli("pod", "mount", ref, name, *extra).last_line


def test_two_pods_read_their_mounts_inside_their_own_namespaces(node, imagery, tmp_path):
    node.start()
    a, b = Pod(node, "team-a", "reader-1"), Pod(node, "team-b", "reader-2")
    # Mounted after both pods started: they still appear in each pod's own view.
    path_a = _pod_mount(a, "imagery:v1", "in")
    path_b = _pod_mount(b, "imagery:v1", "data")
    assert path_a == os.path.join(a.mounts, "team-a", "reader-1", "in")
    assert a.run("cat", os.path.join(path_a, "a.txt")).out == "alpha\n"
    with open(tmp_path / "data" / "sub" / "b.bin", "rb") as f:
        want = hashlib.sha256(f.read()).hexdigest()
    assert b.run("sha256sum", os.path.join(path_b, "sub", "b.bin")).out.split()[0] == want
    assert json.loads(a.cli("pod", "mounts", "--json").out)[0]["container_path"] == path_a
    # The pod's view of ROOT/mounts is read-only (readOnly: true in the manifests).
    assert "Read-only" in a.run("touch", os.path.join(a.mounts, "x"), expect=1).err
    # The host sees the mounts where the daemon made them; a pod unmounting its own works.
    assert os.path.join(node.mounts, "team-b", "reader-2", "data") in mounts_under(node.mounts)
    b.cli("pod", "unmount", "data")
    assert b.run("test", "-e", os.path.join(path_b, "a.txt"), expect=None).code != 0
    assert a.run("cat", os.path.join(path_a, "a.txt")).out == "alpha\n"


def test_a_pod_cannot_reach_another_pods_directory_or_repos_outside_its_allow_list(node, imagery):
    node.start()
    a, b = Pod(node, "team-a", "one"), Pod(node, "team-b", "two")
    _pod_mount(a, "imagery:v1", "in")
    # b names a's pod: refused, whichever op.
    other = {"DATAMONFS_POD_NAMESPACE": "team-a", "DATAMONFS_POD_NAME": "one"}
    r = b.cli("pod", "mount", "imagery:v1", "x", env=other, expect=1)
    assert "may not act for team-a/one" in r.err or "another pod" in r.err
    r = b.cli("pod", "unmount", "in", env=other, expect=1)
    assert "forbidden" in r.err or "not from that pod" in r.err or "may not act" in r.err
    # An allow-list: team-b reads imagery only, and writes results only.
    assert "may not read repo 'secret'" in b.cli("pod", "mount", "secret", "s", expect=1).err
    assert "may not write repo 'imagery'" in b.cli("pod", "mount", "--rw", "imagery:main", "w",
                                                   expect=1).err
    # A namespace that is not listed may use nothing.
    c = Pod(node, "team-c", "three")
    assert "may not read repo 'imagery'" in c.cli("pod", "mount", "imagery:v1", "i",
                                                  expect=1).err
    # a's mount is untouched, and the daemon carries on.
    assert a.run("cat", os.path.join(a.mounts, "team-a", "one", "in", "a.txt")).out == "alpha\n"
    assert node.status_code() == 0


def test_bad_requests_from_a_pod_get_one_clear_error_and_the_daemon_carries_on(node, imagery):
    node.start()
    pod = Pod(node, "team-a", "bad")
    req = os.path.join(pod.dir, "req.py")
    with open(req, "w") as f:
        f.write("import json, socket, sys\n"
                "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
                "f = s.makefile('rwb')\n"
                "for line in sys.stdin:\n"
                "    f.write(line.encode()); f.flush(); print(f.readline().decode(), end='')\n")
    good = {"namespace": "team-a", "name": "bad"}
    requests = [
        {"op": "mount", "ref": "imagery:v1", "pod": good, "name": "../../team-b/x"},
        {"op": "mount", "ref": "imagery:v1", "pod": good, "name": "a/b"},
        {"op": "mount", "ref": "imagery:v1", "pod": good, "name": ".."},
        {"op": "mount", "ref": "imagery:v1", "pod": {"namespace": "Team_A", "name": "x"},
         "name": "n"},
        {"op": "mount", "ref": "imagery:v1", "pod": {"namespace": "team-a"}, "name": "n"},
        {"op": "mount", "ref": "imagery:v1", "pod": "team-a/bad", "name": "n"},
        {"op": "mount", "ref": "imagery:v1", "pod": good, "name": "n",
         "mountpoint": "/etc"},
        {"op": "mount", "ref": "imagery:v1", "pod": good, "name": "n",
         "store": {"url": "file:///somewhere/else"}},
        {"op": "shutdown", "pod": good},
        {"op": "mount", "ref": "imagery:v1", "name": "n"},
    ]
    payload = "".join(json.dumps({"id": i, **r}) + "\n" for i, r in enumerate(requests))
    r = pod.run(sys.executable, req, node.socket, input=payload)
    replies = [json.loads(line) for line in r.out.splitlines()]
    assert len(replies) == len(requests), r.stderr
    codes = [(x["id"], x["error"]["code"]) for x in replies]
    assert codes == [(0, "invalid_name"), (1, "invalid_name"), (2, "invalid_name"),
                     (3, "bad_request"), (4, "bad_request"), (5, "bad_request"),
                     (6, "forbidden"), (7, "forbidden"), (8, "forbidden"), (9, "forbidden")]
    assert all("\n" not in x["error"]["message"] for x in replies)
    assert "file:///somewhere/else" in replies[7]["error"]["message"]
    assert "DATAMONFS_POD_NAMESPACE" in replies[9]["error"]["message"]
    assert not os.path.exists(os.path.join(node.mounts, "team-b"))
    # Nothing was mounted, and the daemon serves the next good request.
    assert _pod_mount(pod, "imagery:v1", "fine")
    assert node.status_code() == 0


def test_an_output_written_in_a_pod_is_committed_onto_its_branch(node, imagery):
    node.start()
    pod = Pod(node, "team-a", "writer")
    out = os.path.join(pod.dir, "work", "out")
    inp = os.path.join(pod.dir, "work", "in")
    r = pod.cli("run", "--input", f"imagery:v1={inp}", "--output", f"results:main={out}",
                "-m", "from a pod", "--label", "done", "--",
                "sh", "-c", f"cp {inp}/a.txt {out}/copy.txt && echo made > {out}/new.txt")
    assert "committed bundle" in r.err
    got = json.loads(node.admin("bundle", "get", "results:done", "--json").out)
    assert got["message"] == "from a pod" and got["files"] == 2
    assert got["inputs"] == [{"repo": "imagery", "bundle": imagery}]
    assert got["process"]["command"][:2] == ["sh", "-c"]
    # The node's author when the pod has no config; the branch moved.
    assert got["author"] == "Node"
    assert node.admin("bundle", "list", "results", "--branch", "main").out.count("\n") == 1
    assert not os.path.lexists(out) and not os.path.lexists(inp)  # the symlinks are gone
    assert mounts_under(os.path.join(node.mounts, "team-a")) == []


def test_a_pods_mounts_are_released_when_it_asks_and_when_it_is_gone(node, imagery):
    node.start()
    a, b = Pod(node, "team-a", "short"), Pod(node, "team-a", "shorter")
    _pod_mount(a, "imagery:v1", "one")
    _pod_mount(a, "imagery:v1", "two")
    _pod_mount(b, "imagery:v1", "one")
    a.cli("pod", "release")
    assert mounts_under(os.path.join(node.mounts, "team-a", "short")) == []
    assert not os.path.exists(os.path.join(node.mounts, "team-a", "short"))
    b.exit()  # every process of the pod is gone: the daemon notices
    wait_for(lambda: mounts_under(os.path.join(node.mounts, "team-a")) == [], 20,
             what="the gone pod's mounts to be released")
    assert "pod team-a/shorter is gone" in node.log_text()
    # The name is free again for a new pod (its binding went with the old one).
    c = Pod(node, "team-a", "shorter")
    _pod_mount(c, "imagery:v1", "one")


def test_sigterm_keeps_fsynced_writes_and_a_restart_resumes_and_commits_them(node, imagery):
    node.start()
    pod = Pod(node, "team-a", "job")
    path = _pod_mount(pod, "results:main", "out", "--rw")
    _pod_mount(pod, "imagery:v1", "in")
    pod.run("sh", "-c", f"echo precious > {path}/kept.txt && sync {path}/kept.txt")
    assert node.stop() == 0  # drains: read-only unmounted, writable kept
    assert mounts_under(node.mounts) == [node.mounts]
    assert "Traceback" not in node.log_text()
    node.start()
    records = json.loads(node.admin("mounts", "--json").out)
    assert [(r["mode"], r["state"]) for r in records] == [("rw", "stale")]
    assert "staged changes kept" in records[0]["reason"]
    # The pod asks for the same mount again: its overlay is resumed, then committed.
    assert pod.run("cat", os.path.join(_pod_mount(pod, "results:main", "out", "--rw"),
                                       "kept.txt")).out == "precious\n"
    bundle = pod.cli("pod", "commit", "out", "-m", "after a restart").last_line
    files = node.admin("bundle", "files", f"results:{bundle}").out
    assert files.startswith("kept.txt\t9\t")


def test_sigterm_with_on_stop_commit_commits_what_was_staged(tmp_path):
    node = NodeDaemon(str(tmp_path), "file://" + str(tmp_path / "store"), on_stop="commit",
                      namespaces={"team-a": {"write": ["results"]}})
    try:
        node.admin("repo", "create", "results")
        node.start()
        pod = Pod(node, "team-a", "job")
        path = _pod_mount(pod, "results:main", "out", "--rw")
        pod.run("sh", "-c", f"echo done > {path}/result.txt")
        assert node.stop() == 0
        got = json.loads(node.admin("bundle", "get", "results:main", "--json").out)
        assert got["files"] == 1 and "the node daemon stopped" in got["message"]
        assert got["author"] == "Node"
    finally:
        node.cleanup()


def test_a_crash_leaves_dead_mounts_that_the_next_daemon_clears(node, imagery):
    node.start()
    pod = Pod(node, "team-a", "crash")
    path = _pod_mount(pod, "imagery:v1", "in")
    node.stop(signal.SIGKILL)
    assert pod.run("ls", path, expect=None).code != 0  # dead: ENOTCONN, not an empty dir
    node.start()
    assert mounts_under(node.mounts) == [node.mounts]
    assert "cleared the dead mount" in node.log_text()
    assert pod.run("cat", os.path.join(_pod_mount(pod, "imagery:v1", "in"), "a.txt")).out == \
        "alpha\n"


def test_probes_and_a_verified_pod_identity(tmp_path):
    """With kubelet's pod log directory and a pod UID in the pod's cgroup (as a container
    runtime sets it), the name a pod gives must be its own."""
    uid = str(uuid.uuid4())
    logs = tmp_path / "pod-logs"
    (logs / f"team-a_real_{uid}").mkdir(parents=True)
    cgroup = f"/sys/fs/cgroup/unified/dmtest-{uid[:8]}/kubepods/pod{uid}"
    try:
        os.makedirs(cgroup)
    except OSError as e:
        pytest.skip(f"cannot make a cgroup here: {e}")
    node = NodeDaemon(str(tmp_path), "file://" + str(tmp_path / "store"), pod_logs=str(logs))
    try:
        node.admin("repo", "create", "imagery")
        write(tmp_path / "d", "x", b"x")
        node.admin("bundle", "upload", "imagery", str(tmp_path / "d"), "-m", "x", "--label", "v1")
        assert node.status_code() == 3  # liveness before start: unreachable
        node.start()
        assert node.status_code() == 0
        real = Pod(node, "team-a", "real", cgroup=cgroup)
        r = real.cli("pod", "mount", "imagery:v1", "in",
                     env={"DATAMONFS_POD_NAME": "fake"}, expect=1)
        assert "this connection comes from pod team-a/real, not from team-a/fake" in r.err
        assert _pod_mount(real, "imagery:v1", "in").endswith("team-a/real/in")
        real.exit()
    finally:
        node.cleanup()
        for d in (cgroup, os.path.dirname(cgroup), os.path.dirname(os.path.dirname(cgroup))):
            try:
                os.rmdir(d)
            except OSError:
                pass


@pytest.fixture
def gcs_node(tmp_path, gcs_emulator, monkeypatch):
    """A node daemon over a GCS store: its chunks go through the block cache (a local
    store's are read in place)."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    n = NodeDaemon(str(tmp_path), f"gs://{make_bucket(gcs_emulator)}/dm")
    try:
        yield n
    finally:
        n.cleanup()
    assert "Traceback" not in n.log_text(), n.log_text()[-3000:]


def test_cache_locality_per_bundle_and_node_labels(gcs_node, tmp_path):
    node = gcs_node
    imagery = upload_imagery(node, tmp_path)
    node.start()
    assert node.admin("node-labels").out == ""  # nothing served yet
    pod = Pod(node, "team-a", "warm")
    path = _pod_mount(pod, "imagery:v1", "in")
    [row] = json.loads(node.admin("cache", "status", "--json").out)["bundles"]
    assert (row["repo"], row["bundle"], row["labels"]) == ("imagery", imagery, ["v1"])
    assert row["bytes"] == 300_006 and row["cached_bytes"] == 0 and row["fraction"] == 0
    pod.run("cat", os.path.join(path, "a.txt"))  # a small part: below the threshold
    assert node.admin("node-labels").out == ""
    pod.run("sha256sum", os.path.join(path, "sub", "b.bin"))
    [row] = json.loads(node.admin("cache", "status", "--json").out)["bundles"]
    assert row["fraction"] == 1.0 and row["cached_bytes"] == row["bytes"]
    assert node.admin("node-labels").out == "datamonfs.io/cached.imagery.v1=true\n"
    assert json.loads(node.admin("node-labels", "--json").out) == {
        "datamonfs.io/cached.imagery.v1": "true"}
    # Asked by ref, also a bundle not served; pods may not ask.
    write(tmp_path / "other", "c.txt", b"not cached\n")
    node.admin("bundle", "upload", "imagery", str(tmp_path / "other"), "-m", "v2", "--label", "v2")
    rows = json.loads(node.admin("cache", "status", "--json", "imagery:v2").out)["bundles"]
    assert [(r["labels"], r["fraction"]) for r in rows] == [(["v2"], 0.0), (["v1"], 1.0)]
    assert "administrator" in pod.cli("cache", "status", expect=1).err
