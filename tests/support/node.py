"""A node daemon on a root of its own, and pods made of Linux namespaces, for real.

`NodeDaemon` runs the container image's entry command (read from packaging/Dockerfile,
so the tests run what the DaemonSet runs) with --root and --socket in the test's
directory. A `Pod` is a process under `unshare --mount --net --propagation slave`: it
bind-mounts the node's ROOT/mounts somewhere of its own, as a hostPath volume with
HostToContainer propagation does, and runs commands inside its namespaces on request.
Its network namespace is its pod identity when no pod UID is in its cgroup, as for
every pod outside Kubernetes; with `cgroup`, the pod is placed in a cgroup named after
a pod UID, as the container runtime does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

from .cli import CLI, DATAMONFS, Result
from .processes import children_of, mounts_under, terminate_all, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCKERFILE = os.path.join(ROOT, "packaging", "Dockerfile")


def entry_command() -> list[str]:
    """The image's ENTRYPOINT, with `datamonfs` being the one under test."""
    with open(DOCKERFILE) as f:
        m = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", f.read(), re.M)
    assert m, "packaging/Dockerfile has no ENTRYPOINT in exec form"
    argv = json.loads(m.group(1))
    assert argv[0] == "datamonfs"
    return [DATAMONFS, *argv[1:]]


class NodeDaemon:
    def __init__(self, base: str, store_url: str, namespaces: dict | None = None,
                 on_stop: str = "keep", pod_logs: str | None = None):
        self.base = base
        self.root = os.path.join(base, "root")
        self.mounts = os.path.join(self.root, "mounts")
        self.sockdir = tempfile.mkdtemp(prefix="dmn-", dir="/tmp")
        self.socket = os.path.join(self.sockdir, "daemon.sock")
        self.admin = CLI(os.path.join(base, "admin"), store_url)  # a host process: the admin
        self.admin("config", "create", "--name", "Ada", "--email", "ada@example.org")
        self.admin.env["DATAMONFS_SOCKET"] = self.socket
        self.store_url = store_url
        self.proc: subprocess.Popen | None = None
        self.pids: set[int] = set()
        os.makedirs(self.root, exist_ok=True)
        self.write_config(namespaces if namespaces is not None else
                          {"team-a": {"read": ["*"], "write": ["results"]},
                           "team-b": {"read": ["imagery"], "write": ["results"]}},
                          on_stop, pod_logs or os.path.join(base, "no-pod-logs"))

    def write_config(self, namespaces: dict, on_stop: str, pod_logs: str) -> None:
        lines = [f"store = {json.dumps(self.store_url)}", 'name = "Node"',
                 'email = "node@example.org"', "", "[node]", f"on_stop = {json.dumps(on_stop)}",
                 "pod_check_seconds = 0.5", f"pod_logs = {json.dumps(pod_logs)}"]
        for ns, access in namespaces.items():
            lines += ["", f"[node.namespaces.{ns}]"]
            lines += [f"{k} = {json.dumps(v)}" for k, v in access.items()]
        with open(os.path.join(self.root, "config.toml"), "w") as f:
            f.write("\n".join(lines) + "\n")

    @property
    def log(self) -> str:
        return os.path.join(self.base, "daemon.out")

    def start(self) -> None:
        env = dict(self.admin.env)
        for var in ("DATAMONFS_STORE", "DATAMONFS_CONFIG", "DATAMONFS_SOCKET"):
            env.pop(var, None)  # the node config and the command line say it all
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(entry_command() + ["--root", self.root, "--socket",
                                                            self.socket],
                                         env=env, stdout=out, stderr=out, cwd="/")
        self.pids.add(self.proc.pid)
        wait_for(lambda: self.proc.poll() is not None or self.status_code() == 0, 30,
                 what="the node daemon to serve")
        assert self.proc.poll() is None, self.log_text()

    def status_code(self) -> int:
        return self.admin("daemon", "status", "--json", expect=None).code

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        self.pids.update(children_of(self.proc.pid))
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def log_text(self) -> str:
        with open(self.log, errors="replace") as f:
            return f.read()

    def cleanup(self) -> None:
        if self.proc is not None:
            self.pids.update(children_of(self.proc.pid))
            if self.proc.poll() is None:  # first the daemon, which stops its workers itself
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    pass
        for pid in list(self.pids):
            self.pids.update(children_of(pid))
        terminate_all(self.pids)
        if self.proc is not None:
            self.proc.wait()
        for mp in mounts_under(self.root):  # the pods' mounts, then the shared ROOT/mounts
            subprocess.run(["umount", "-l", mp], capture_output=True)
        shutil.rmtree(self.sockdir, ignore_errors=True)


AGENT = r"""
import json, os, subprocess, sys
src, view = sys.argv[1], sys.argv[2]
# What kubelet does for a hostPath volume with mountPropagation: HostToContainer and
# readOnly: true, as the examples mount ROOT/mounts (the mounts below stay writable).
subprocess.run(["mount", "--rbind", src, view], check=True)
subprocess.run(["mount", "--make-rslave", view], check=True)
subprocess.run(["mount", "-o", "remount,bind,ro", view], check=True)
print(json.dumps({"ready": os.getpid()}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    try:
        p = subprocess.run(req["argv"], capture_output=True, text=True, timeout=req["timeout"],
                           env={**os.environ, **req["env"]}, input=req["input"])
        reply = {"code": p.returncode, "out": p.stdout, "err": p.stderr}
    except Exception as e:
        reply = {"code": -1, "out": "", "err": repr(e)}
    print(json.dumps(reply), flush=True)
"""


class Pod:
    """A pod on the node: its own mount and network namespaces, the node's ROOT/mounts
    seen at `self.mounts` (as DATAMONFS_MOUNTS tells the CLI inside)."""

    def __init__(self, node: NodeDaemon, namespace: str, name: str, cgroup: str | None = None):
        self.node = node
        self.namespace, self.name = namespace, name
        self.dir = os.path.join(node.base, f"pod-{namespace}-{name}")
        self.mounts = os.path.join(self.dir, "mounts")
        os.makedirs(self.mounts, exist_ok=True)
        home = os.path.join(self.dir, "home")
        self.env = {"DATAMONFS_SOCKET": node.socket, "DATAMONFS_POD_NAMESPACE": namespace,
                    "DATAMONFS_POD_NAME": name, "DATAMONFS_MOUNTS": self.mounts, "HOME": home,
                    "XDG_CONFIG_HOME": os.path.join(home, "config"),
                    "XDG_STATE_HOME": os.path.join(home, "state"),
                    "XDG_CACHE_HOME": os.path.join(home, "cache"),
                    "XDG_RUNTIME_DIR": os.path.join(home, "run")}
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DATAMONFS_", "XDG_", "STORAGE_EMULATOR"))}
        argv = ["unshare", "--mount", "--net", "--propagation", "slave", "--",
                sys.executable, "-c", AGENT, node.mounts, self.mounts]
        if cgroup:  # join it first: the runtime puts a pod's containers in the pod's cgroup
            argv = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, *argv]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        ready = json.loads(self.proc.stdout.readline() or "{}")
        assert "ready" in ready, self.proc.stderr.read()
        node.pids.add(self.proc.pid)

    def run(self, *argv: str, timeout: float = 120, env: dict | None = None,
            expect: int | None = 0, input: str | None = None) -> Result:
        """Run a command inside the pod; its status, stdout and stderr."""
        self.proc.stdin.write(json.dumps({"argv": list(argv), "timeout": timeout, "input": input,
                                          "env": {**self.env, **(env or {})}}) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        result = Result(reply["code"], reply["out"], reply["err"])
        if expect is not None:
            assert result.code == expect, (f"in pod {self.namespace}/{self.name}: {argv} exited "
                                           f"{result.code}\nstdout: {result.out}\nstderr: "
                                           f"{result.err}")
        return result

    def cli(self, *args: str, **kw) -> Result:
        return self.run(DATAMONFS, *args, **kw)

    def exit(self) -> None:
        """The pod ends: its processes exit, and its network namespace with them."""
        self.proc.stdin.close()
        self.proc.wait(30)
        self.proc.stdout.close()
        self.proc.stderr.close()
