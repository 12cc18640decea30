"""A writable mount in a process of its own, for tests (no daemon).

A FUSE server and a blocking client of it in one thread deadlock, so tests run
this module as a child process:

    python writable_harness.py STATE_DIR MOUNTPOINT STORE_URL REPO BRANCH [--new]

It opens (or creates, on the branch head or empty with --new) the overlay in
STATE_DIR, mounts a WritableFS at MOUNTPOINT, prints {"event": "ready"} and then
answers JSON lines on stdin: {"op": "commit", "message", "label"},
{"op": "status"}, {"op": "stop"}. `Harness` below drives it from a test.
DATAMONFS_HARNESS_CRASH=STEP kills it at a step of a commit;
DATAMONFS_HARNESS_GROUP_SECONDS sets how long changes wait for their group commit.
"""

from __future__ import annotations

import json
import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    import pyfuse3
    import trio

    from datamonfs.cache import CachedChunkReader
    from datamonfs.core.repository import Author, Repository
    from datamonfs.core.stores import open_store
    from datamonfs.fs.writable import init_session
    from datamonfs.fs.writable_session import WritableRequest, WritableSession

    state, mountpoint, store_url, repo_name, branch = sys.argv[1:6]
    repo = Repository(open_store(store_url))
    req = WritableRequest(repo_name, branch, "--new" in sys.argv[6:], state, mountpoint,
                          os.getuid(), os.getgid())
    session = WritableSession.open(repo, CachedChunkReader(None, repo.chunks), req)
    _crash_hooks(session.ov)
    if os.environ.get("DATAMONFS_HARNESS_GROUP_SECONDS"):  # how long changes may wait
        session.ov.db.group_seconds = float(os.environ["DATAMONFS_HARNESS_GROUP_SECONDS"])
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
        init_session(session.fs, mountpoint)
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


if __name__ == "__main__":
    main()
