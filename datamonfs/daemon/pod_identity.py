"""Which pod a connection to the node daemon comes from, and what the daemon can prove.

A pod's request names its pod, `{"namespace": NS, "name": POD}`. No Kubernetes API server
is asked (none may be reachable from a node, and none runs in the tests), so the daemon
checks what the node itself knows about the peer, by the pid SO_PEERCRED gives (the
daemon runs with hostPID, so that pid is in its own /proc):

- the peer's **pod UID**, from its cgroup (`.../pod<UID>/...`, or `...-pod<UID>.slice`
  with `_` for `-` under systemd): the container runtime puts it there and an
  unprivileged container cannot move out of it;
- kubelet's log directory of that pod, `POD_LOGS/NAMESPACE_NAME_UID`: when it is there
  the name is **verified**: a request naming any other pod is refused;
- otherwise (outside Kubernetes, or POD_LOGS not mounted) the name is **bound**: the
  first connection naming a pod binds the name to its evidence, the pod UID or else the
  peer's network namespace (which every container of a pod shares), one to one; later
  requests for that name must bring the same evidence, and evidence bound to one name
  cannot use another. Binding stops one pod from using another's mounts once that pod
  has connected; it does not prove the name was not made up (docs/KUBERNETES.md).

A peer with the daemon's own evidence (a process of the daemon's pod, or of the host
when the daemon runs outside Kubernetes) is the node's administrator.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass

from .protocol import ProtocolError, Refused

log = logging.getLogger(__name__)

_NAMESPACE = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")  # a DNS-1123 label
_POD = re.compile(r"[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?")  # a DNS-1123 subdomain
_POD_UID = re.compile(r"pod([0-9a-f]{8}([-_])[0-9a-f]{4}\2[0-9a-f]{4}\2[0-9a-f]{4}\2[0-9a-f]{12})"
                      r"(?:\.slice)?(?:/|$)")


def is_namespace(text: object) -> bool:
    return isinstance(text, str) and bool(_NAMESPACE.fullmatch(text))


@dataclass(frozen=True, order=True)
class PodName:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def parse_pod(obj: object) -> PodName:
    """The `pod` field of a request: a namespace and a pod name as Kubernetes spells them."""
    if (not isinstance(obj, dict) or set(obj) != {"namespace", "name"}
            or not is_namespace(obj["namespace"]) or not isinstance(obj["name"], str)
            or not _POD.fullmatch(obj["name"])):
        raise ProtocolError(f"malformed pod identity {obj!r:.200}: field 'pod' must be "
                            "{\"namespace\": NAMESPACE, \"name\": POD} in Kubernetes' spelling "
                            "(lowercase letters, digits, '-', and '.' in pod names)")
    return PodName(obj["namespace"], obj["name"])


@dataclass(frozen=True)
class Evidence:
    key: str  # "pod:UID" or "netns:INODE": what a pod name is bound to
    pod_uid: str | None


def evidence_of(pid: int) -> Evidence | None:
    """What the node knows of process `pid`'s pod; None when the process is gone."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8", errors="replace") as f:
            cgroups = f.read()
        netns = os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None
    uid = pod_uid_in(cgroups)
    return Evidence(f"pod:{uid}", uid) if uid else Evidence(f"netns:{netns}", None)


def pod_uid_in(cgroups: str) -> str | None:
    """The pod UID in a /proc/PID/cgroup text (cgroupfs or systemd driver), if any."""
    for line in cgroups.splitlines():
        m = _POD_UID.search(line.split(":", 2)[-1])
        if m:
            return m.group(1).replace("_", "-")
    return None


def peer_evidence(pid: int) -> Evidence:
    if pid <= 0:
        raise Refused("cannot tell which process this connection comes from (it is in another "
                      "PID namespace): run the node daemon with hostPID", "forbidden")
    ev = evidence_of(pid)
    if ev is None:
        raise Refused("the connecting process is gone", "forbidden")
    return ev


def live_keys() -> set[str]:
    """The evidence of every process on the node: a bound pod whose evidence is not among
    them is gone (its containers and its sandbox have exited)."""
    keys = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            ev = evidence_of(int(entry))
            if ev is not None:
                keys.add(ev.key)
    return keys


def logged_pod(pod_logs: str, uid: str) -> PodName | None:
    """The pod kubelet runs under this UID, from its log directory NAMESPACE_NAME_UID
    (neither name may hold '_'); None when kubelet has none for it."""
    try:
        names = os.listdir(pod_logs)
    except OSError:
        return None
    for name in names:
        parts = name.split("_")
        if len(parts) == 3 and parts[2] == uid and is_namespace(parts[0]):
            return PodName(parts[0], parts[1])
    return None


class Bindings:
    """Pod names bound one to one to evidence, in a file that outlives the daemon (a
    restarted daemon keeps serving the same pods, and refusing the same impostors)."""

    def __init__(self, path: str):
        self.path = path
        self.by_pod: dict[str, str] = {}
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
            self.by_pod = {k: v for k, v in doc["pods"].items()
                           if isinstance(k, str) and isinstance(v, str)}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
            log.warning("ignoring unreadable pod bindings %s: %s", path, e)

    def pods(self) -> dict[PodName, str]:
        return {PodName(*k.split("/", 1)): v for k, v in self.by_pod.items()}

    def claim(self, pod: PodName, ev: Evidence) -> None:
        """Refuse unless `pod` is bound to `ev` or neither is bound yet (then bind them)."""
        bound = self.by_pod.get(str(pod))
        if bound is not None and bound != ev.key:
            raise Refused(f"pod {pod} is served to another pod's connections; this connection "
                          "is not from that pod", "forbidden")
        other = next((p for p, k in self.by_pod.items() if k == ev.key and p != str(pod)), None)
        if other is not None:
            raise Refused(f"this connection comes from pod {other}; it may not act for {pod}",
                          "forbidden")
        if bound is None:
            self.by_pod[str(pod)] = ev.key
            self._save()

    def forget(self, pod: PodName) -> None:
        if self.by_pod.pop(str(pod), None) is not None:
            self._save()

    def _save(self) -> None:
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".pods.")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"v": 1, "pods": self.by_pod}, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)
