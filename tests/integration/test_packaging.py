"""packaging/: the kustomize base and examples render (kubectl kustomize, offline) into
objects that validate against the Kubernetes OpenAPI schemas (kubernetes-validate,
strict: unknown fields refused), and say what docs/KUBERNETES.md says they do. The
examples' command lines parse with today's CLI; the image's entry command is the
systemd unit's, and the one tests/support/node.py runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
import warnings

import click
import kubernetes_validate
import pytest
import yaml

from datamonfs.cli.main import cli as datamonfs_cli
from datamonfs.daemon.node_config import parse
from datamonfs.core.repository import Author
from support.node import DOCKERFILE, ROOT, entry_command

K8S = os.path.join(ROOT, "packaging", "k8s")
KINDS = {".": 8, "base": 4, "examples": 4, "examples/job": 1, "examples/pipeline": 2}


def render(directory: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is missing: 'make deps' installs it (Debian: kubernetes-client)"
    out = subprocess.run([kubectl, "kustomize", os.path.join(K8S, directory)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module")
def everything() -> list[dict]:
    return render(".")


@pytest.mark.parametrize("directory", sorted(KINDS))
def test_every_rendered_object_validates_against_the_kubernetes_schemas(directory):
    objects = render(directory)
    assert len(objects) == KINDS[directory]
    version = kubernetes_validate.latest_version()
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


def _one(objects: list[dict], kind: str, name: str) -> dict:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def test_the_daemonset_is_what_node_mode_needs(everything):
    ds = _one(everything, "DaemonSet", "datamonfs")
    spec = ds["spec"]["template"]["spec"]
    [c] = spec["containers"]
    assert spec["hostPID"] is True and c["securityContext"]["privileged"] is True
    assert spec["terminationGracePeriodSeconds"] >= 60  # the drain's time
    assert "command" not in c  # the image's entry command runs, with these args
    assert c["args"] == _dockerfile_cmd()
    probe = ["datamonfs", "daemon", "status", "--json"]
    assert c["livenessProbe"]["exec"]["command"] == probe
    assert c["readinessProbe"]["exec"]["command"] == probe
    assert set(c["resources"]) == {"requests", "limits"}
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert volumes["fuse"]["hostPath"] == {"path": "/dev/fuse", "type": "CharDevice"}
    assert mounts["mounts"]["mountPropagation"] == "Bidirectional"
    assert mounts["mounts"]["mountPath"] == volumes["mounts"]["hostPath"]["path"] == \
        "/var/lib/datamonfs/mounts"
    assert mounts["socket"]["mountPath"] == volumes["socket"]["hostPath"]["path"] == \
        "/run/datamonfs"
    assert volumes["gcs"]["secret"]["secretName"] == "datamonfs-gcs"
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["DATAMONFS_CONFIG"].startswith(mounts["config"]["mountPath"])
    assert mounts["pod-logs"]["mountPath"] == "/var/log/pods" and mounts["pod-logs"]["readOnly"]


def test_the_node_config_is_valid_and_allows_what_the_examples_use(everything):
    cm = _one(everything, "ConfigMap", "datamonfs-node")
    doc = tomllib.loads(cm["data"]["config.toml"])
    cfg = parse(doc["node"], "configmap", doc["store"], Author("n", "e"))
    access = cfg.access("datamonfs-examples")
    assert access.allows("imagery", writable=False) and access.allows("results", writable=True)
    assert not access.allows("imagery", writable=True)
    assert cfg.access("default") == type(access)()  # not listed: nothing


def _commands(objects: list[dict]) -> list[list[str]]:
    found = []
    for o in objects:
        if o["kind"] != "Job":
            continue
        spec = o["spec"]["template"]["spec"]
        for c in spec.get("initContainers", []) + spec["containers"]:
            env = {e["name"] for e in c["env"]}
            assert {"DATAMONFS_SOCKET", "DATAMONFS_POD_NAMESPACE", "DATAMONFS_POD_NAME",
                    "DATAMONFS_MOUNTS"} <= env
            view = {m["name"]: m for m in c["volumeMounts"]}["datamonfs-mounts"]
            assert view["mountPropagation"] == "HostToContainer" and view["readOnly"] is True
            cmd = c["command"]
            if cmd[0] == "sh":
                found += [part.split() for part in re.findall(r"datamonfs [a-z ]+", cmd[2])]
            else:
                found.append(cmd)
    return found


def test_the_examples_command_lines_parse_with_this_cli(everything):
    commands = _commands(everything)
    assert {tuple(c[1:2]) for c in commands} == {("run",), ("wait",), ("pod",)}
    for argv in commands:
        assert argv[0] == "datamonfs"
        _parse(datamonfs_cli, argv[1:])


def _parse(group: click.Group, args: list[str]) -> None:
    """Resolve and parse a command line as click would run it, without running it."""
    ctx = group.make_context("datamonfs", list(args), resilient_parsing=False)
    with warnings.catch_warnings():  # click 8.2 moves protected_args into args
        warnings.simplefilter("ignore", DeprecationWarning)
        name, cmd, rest = group.resolve_command(ctx, ctx.protected_args + ctx.args)
    if isinstance(cmd, click.Group):
        _parse(cmd, rest)
    else:
        cmd.make_context(name, rest, parent=ctx)


def _dockerfile_cmd() -> list[str]:
    with open(DOCKERFILE) as f:
        return json.loads(re.search(r"^CMD\s+(\[.*\])\s*$", f.read(), re.M).group(1))


def test_the_image_and_the_systemd_unit_run_one_command_line():
    with open(DOCKERFILE) as f:
        text = f.read()
    assert re.search(r"^FROM debian:12-slim$", text, re.M)
    assert "fuse3" in text
    entry = ["datamonfs", *entry_command()[1:]]
    assert entry == ["datamonfs", "daemon", "start", "--node", "--foreground"]
    with open(os.path.join(ROOT, "packaging", "systemd", "datamonfs-node.service")) as f:
        exec_start = re.search(r"^ExecStart=(.*)$", f.read(), re.M).group(1).split()
    assert os.path.basename(exec_start[0]) == "datamonfs"
    assert exec_start[1:] == entry[1:] + _dockerfile_cmd()
