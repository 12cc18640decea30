"""Small helpers shared by tests: making folders and comparing them."""

from __future__ import annotations

import os
import stat


def write(root, rel: str, data: bytes, mode: int = 0o644) -> str:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def snapshot(root) -> dict:
    """Everything datamonfs promises to keep: kind, content or target, mode, mtime (files)."""
    result = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                result[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                result[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                with open(path, "rb") as f:
                    result[rel] = ("file", f.read(), stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    return result


def on_terminal(args: list[str], env: dict, timeout: float = 120) -> tuple[int, bytes]:
    """Run a command with stderr on a pseudo-terminal: (exit status, what it showed there)."""
    import pty
    import subprocess

    master, slave = pty.openpty()
    try:
        proc = subprocess.run(args, env=env, stderr=slave, stdout=subprocess.PIPE,
                              timeout=timeout)
        os.close(slave)
        shown = b""
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not data:
                break
            shown += data
    finally:
        os.close(master)
    return proc.returncode, shown
