"""The node config: what a node daemon serves, to which pods (docs/KUBERNETES.md).

It is an ordinary datamonfs config file (TOML: `store`, `cache_size`, `name` and `email`
for the commits the daemon makes itself, ...) with a `[node]` table that only the node
daemon reads:

    [node]
    on_stop = "keep"            # or "commit": a writable mount's staged changes when the
                                # daemon stops or a pod's mounts are released
    pod_logs = "/var/log/pods"  # kubelet's pod log directories: verified pod identities
    pod_check_seconds = 10      # how often mounts of pods that are gone are released

    [node.namespaces.team-a]    # pods of namespace team-a may mount ...
    read = ["imagery", "models"]  # ... these repos read-only ("*": every repo)
    write = ["models"]            # ... and these writable too

A namespace not listed may use nothing: the allow-list is the only grant there is.
Unknown keys are refused, as in every config, so a typo never widens or narrows access
silently.
"""

from __future__ import annotations

import os
import socket
import tomllib
from dataclasses import dataclass, field

from ..core import config
from ..core.names import is_name
from ..core.repository import Author
from ..core.stores import StoreSpec
from ..errors import ConfigError
from .pod_identity import is_namespace

ON_STOP = ("keep", "commit")
ANY = "*"


@dataclass(frozen=True)
class Access:
    """What one namespace's pods may mount: repos read-only, and repos writable."""

    read: frozenset[str] = frozenset()
    write: frozenset[str] = frozenset()

    def allows(self, repo: str, writable: bool) -> bool:
        granted = self.write if writable else self.read | self.write
        return ANY in granted or repo in granted


@dataclass(frozen=True)
class NodeConfig:
    path: str
    store: StoreSpec  # the one store the node serves (its config's, with its credential)
    author: Author  # of commits the daemon makes itself (on stop, on release, for pods)
    on_stop: str = "keep"
    pod_logs: str = "/var/log/pods"
    pod_check_seconds: float = 10.0
    namespaces: dict[str, Access] = field(default_factory=dict)

    def access(self, namespace: str) -> Access:
        return self.namespaces.get(namespace, Access())


def load() -> NodeConfig:
    """The node config named by DATAMONFS_CONFIG (node.setup_environment points it at
    ROOT/config.toml unless it is set). It must exist: without it no pod may use anything."""
    path = config.config_path()
    if not os.path.exists(path):
        raise ConfigError(f"no node config at {path}; write one (docs/KUBERNETES.md) or "
                          "name it with DATAMONFS_CONFIG")
    cfg = config.load()  # the keys every config has, checked as everywhere
    try:
        with open(path, "rb") as f:
            node = tomllib.load(f).get("node", {})
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read node config {path}: {e}") from None
    return parse(node, path, cfg.store_spec(), _author(cfg))


def _author(cfg: config.Config) -> Author:
    if cfg.name and cfg.email:
        return Author(cfg.name, cfg.email)
    host = socket.gethostname()
    return Author(f"datamonfs node {host}", f"datamonfs@{host}")


def parse(node: object, path: str, store: StoreSpec, author: Author) -> NodeConfig:
    """The [node] table, every key and type checked (unknown keys refused)."""
    where = f"node config {path}: [node]"
    if not isinstance(node, dict):
        raise ConfigError(f"{where} must be a table")
    known = {"on_stop": str, "pod_logs": str, "pod_check_seconds": (int, float),
             "namespaces": dict}
    for key, value in node.items():
        if key not in known or not isinstance(value, known[key]) or isinstance(value, bool):
            raise ConfigError(f"{where}: unknown key or wrong type for {key!r}; known keys: "
                              f"{', '.join(known)}")
    on_stop = node.get("on_stop", "keep")
    if on_stop not in ON_STOP:
        raise ConfigError(f"{where}: on_stop = {on_stop!r}; use \"keep\" or \"commit\"")
    seconds = node.get("pod_check_seconds", 10.0)
    if not 0 < seconds <= 3600:
        raise ConfigError(f"{where}: pod_check_seconds must be between 0 and 3600")
    namespaces = {ns: _access(ns, table, where)
                  for ns, table in node.get("namespaces", {}).items()}
    return NodeConfig(path=path, store=store, author=author, on_stop=on_stop,
                      pod_logs=node.get("pod_logs", "/var/log/pods"),
                      pod_check_seconds=float(seconds), namespaces=namespaces)


def _access(namespace: str, table: object, where: str) -> Access:
    where = f"{where}.namespaces.{namespace}"
    if not is_namespace(namespace):
        raise ConfigError(f"{where}: {namespace!r} is not a Kubernetes namespace name")
    if not isinstance(table, dict) or not set(table) <= {"read", "write"}:
        raise ConfigError(f"{where} takes only the lists read and write")
    lists = {}
    for key in ("read", "write"):
        repos = table.get(key, [])
        if not isinstance(repos, list) or not all(r == ANY or is_name(r) for r in repos):
            raise ConfigError(f"{where}: {key} must be a list of repo names or \"*\"")
        lists[key] = frozenset(repos)
    return Access(**lists)
