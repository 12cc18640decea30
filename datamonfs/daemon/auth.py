"""Who may talk to the daemon: the peer's uid from SO_PEERCRED.

The socket's mode (0600, or 0660 with a configured group) is the first gate;
this is the second, for when the file's permissions are wider than meant.
Allowed: root, the daemon's own user, and members of the configured group.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int
    # "NAMESPACE/POD" when the node daemon's door (pods.py) identified the peer's pod and
    # addressed the request to that pod's own directory: it may act on that pod's mounts,
    # whichever of the pod's users made them.
    pod: str = ""


def peer_of(sock) -> Peer:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return Peer(pid, uid, gid)


def groups_of(peer: Peer) -> set[int]:
    groups = {peer.gid}
    try:
        with open(f"/proc/{peer.pid}/status") as f:
            for line in f:
                if line.startswith("Groups:"):
                    groups.update(int(g) for g in line.split()[1:])
    except OSError:
        pass
    return groups


def allowed(peer: Peer, group: int | None) -> bool:
    if peer.uid in (0, os.geteuid()):
        return True
    return group is not None and group in groups_of(peer)


def is_privileged(peer: Peer) -> bool:
    """May act on any mount, not only on its own."""
    return peer.uid in (0, os.geteuid())
