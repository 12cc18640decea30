"""A writable mount in a process of its own, for tests (no daemon).

A FUSE server and a blocking client of it in one thread deadlock, so tests run
this module as a child process:

    python writable_harness.py STATE_DIR MOUNTPOINT STORE_URL REPO BRANCH [--new]

It opens (or creates, on the branch head or empty with --new) the overlay in
STATE_DIR, mounts a WritableFS at MOUNTPOINT, prints {"event": "ready"} and then
answers JSON lines on stdin: {"op": "commit", "message", "label"},
{"op": "status"}, {"op": "stop"}. `Harness` below drives it from a test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    import pyfuse3
    import trio

    from datamonfs.cache import CachedChunkReader
    from datamonfs.core.repository import Author, Repository
    from datamonfs.core.stores import open_store
    from datamonfs.fs.writable import mount_options
    from datamonfs.fs.writable_session import WritableRequest, WritableSession

    state, mountpoint, store_url, repo_name, branch = sys.argv[1:6]
    repo = Repository(open_store(store_url))
    req = WritableRequest(repo_name, branch, "--new" in sys.argv[6:], state, mountpoint,
                          os.getuid(), os.getgid())
    session = WritableSession.open(repo, CachedChunkReader(None, repo.chunks), req)
    _crash_hooks(session.ov)
    author = Author("Ada", "ada@example.org")

    async def answer(req: dict) -> dict:
        if req["op"] == "commit":
            return {"ok": True, **await session.commit(req.get("message", "m"), author,
                                                       req.get("label"))}
        if req["op"] == "status":
            return {"ok": True, **await session.status(req.get("limit", 100_000))}
        if req["op"] == "info":
            return {"ok": True, "info": session.ov.info.to_json(), **session.stats()}
        return {"ok": False, "error": "unknown op"}

    async def control() -> None:
        stdin = trio.lowlevel.FdStream(os.dup(0))
        buf = b""
        while True:
            data = await stdin.receive_some(65536)
            if not data:
                pyfuse3.terminate()
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                req = json.loads(line)
                if req["op"] == "stop":
                    pyfuse3.terminate()
                    return
                try:
                    reply = await answer(req)
                except Exception as e:  # reported to the test
                    reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
                print(json.dumps(reply), flush=True)

    async def run() -> None:
        pyfuse3.init(session.fs, mountpoint, mount_options(session.fs))
        print(json.dumps({"event": "ready", "pid": os.getpid(), **session.ready()}), flush=True)
        try:
            async with trio.open_nursery() as n:
                n.start_soon(control)
                await pyfuse3.main(min_tasks=2, max_tasks=64)
                n.cancel_scope.cancel()
        finally:
            pyfuse3.close(unmount=True)
            session.close()

    trio.run(run)


def _crash_hooks(ov) -> None:
    """DATAMONFS_HARNESS_CRASH=STEP: SIGKILL this process at that step of a commit."""
    import datamonfs.fs.overlay.commit as overlay_commit

    step = os.environ.get("DATAMONFS_HARNESS_CRASH")

    def die(fn):
        def wrapper(*args, **kw):
            os.kill(os.getpid(), signal.SIGKILL)
        return wrapper

    if step == "before_pending":
        ov.set_pending = die(ov.set_pending)
    elif step == "before_publish":
        overlay_commit.publish = die(overlay_commit.publish)
    elif step == "before_rebase":
        ov.rebase = die(ov.rebase)


# -- the test side ----------------------------------------------------------------------


def mounted(mountpoint: str) -> bool:
    mp = os.path.normpath(mountpoint)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == mp for line in f)


def unmount(mountpoint: str) -> None:
    if mounted(mountpoint):
        if subprocess.run(["fusermount3", "-u", mountpoint], capture_output=True).returncode:
            subprocess.run(["fusermount3", "-u", "-z", mountpoint], capture_output=True)


class ChildDied(RuntimeError):
    pass


class Harness:
    """One child process serving a writable mount; `stop`/`kill` end it by pid."""

    def __init__(self, state: str, mountpoint: str, store_url: str, repo: str, branch: str,
                 new: bool = False, env: dict | None = None):
        self.mountpoint = mountpoint
        os.makedirs(mountpoint, exist_ok=True)
        args = [sys.executable, os.path.join(HERE, "writable_harness.py"), state, mountpoint,
                store_url, repo, branch] + (["--new"] if new else [])
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env, start_new_session=True)
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(10)
            raise RuntimeError(f"the writable mount did not start (exit {self.proc.returncode})")
        self.ready = json.loads(line)

    def call(self, op: str, **fields) -> dict:
        try:
            self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except OSError:
            line = ""
        if not line:
            raise ChildDied(f"the writable mount process died (exit {self.proc.wait(10)})")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(reply.get("error"))
        return reply

    def commit(self, message: str = "m", label: str | None = None) -> dict:
        return self.call("commit", message=message, label=label)

    def status(self) -> list[dict]:
        return self.call("status")["changes"]

    def stop(self, timeout: float = 20) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "stop"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        unmount(self.mountpoint)

    def kill(self) -> None:
        """SIGKILL, as a crash; the dead mount is detached after the process is gone."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        unmount(self.mountpoint)


if __name__ == "__main__":
    main()


# -- fixtures and helpers shared by tests/test_writable*.py -------------------------------

ADA_NAME, ADA_EMAIL = "Ada", "ada@example.org"


def snapshot(root: str, content: bool = True) -> dict:
    """What a writable mount must agree on with a local directory: kind, mode, size,
    bytes (as a digest), link target. Directories and symlinks are not followed."""
    import hashlib
    import stat as st

    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            s = os.lstat(path)
            if st.S_ISLNK(s.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif st.S_ISDIR(s.st_mode):
                out[rel] = ("dir", st.S_IMODE(s.st_mode))
            else:
                digest = None
                if content:
                    with open(path, "rb") as f:
                        digest = hashlib.blake2b(f.read(), digest_size=16).hexdigest()
                out[rel] = ("file", st.S_IMODE(s.st_mode), s.st_size, digest)
    return out


def tree_snapshot(repo, tree: str, prefix: str = "") -> dict:
    """The same description of a bundle's tree, read from the store."""
    import hashlib

    from datamonfs.core.model import DIR, LINK

    out = {}
    for entry in repo.trees.entries(tree):
        rel = prefix + entry.name
        if entry.kind == DIR:
            out[rel] = ("dir", entry.mode)
            out.update(tree_snapshot(repo, entry.tree, rel + "/"))
        elif entry.kind == LINK:
            out[rel] = ("link", entry.target)
        else:
            h = hashlib.blake2b(digest_size=16)
            for data in repo.chunks.read_chunks(repo.trees.chunks(entry)):
                h.update(data)
            out[rel] = ("file", entry.mode, entry.size, h.hexdigest())
    return out


class Mounts:
    """Harnesses started by a test, all ended (by pid) and unmounted at teardown."""

    def __init__(self, tmp: str, store_url: str):
        self.tmp = tmp
        self.store_url = store_url
        self.started: list[Harness] = []
        self._n = 0

    def start(self, repo: str, branch: str = "main", new: bool = False, state: str | None = None,
              mountpoint: str | None = None, env: dict | None = None) -> Harness:
        self._n += 1
        state = state or os.path.join(self.tmp, f"state{self._n}")
        mountpoint = mountpoint or os.path.join(self.tmp, f"mnt{self._n}")
        h = Harness(state, mountpoint, self.store_url, repo, branch, new, env)
        h.state = state
        self.started.append(h)
        return h

    def cleanup(self) -> None:
        for h in self.started:
            try:
                h.stop(timeout=10)
            except Exception:
                h.kill()
