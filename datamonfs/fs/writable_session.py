"""A writable mount's life in one process: open (or resume) its overlay, serve it,
commit it, report what is staged. The mount worker (and the test harness) use it
so that none of them repeats these rules.

Blocking parts run in threads; `commit` closes the file system's write gate, so
writers wait while it runs and readers do not.
"""

from __future__ import annotations

import ctypes
import os
import time
from dataclasses import dataclass

import trio

from ..cache import FileReader
from ..core.chunks import ChunkReader
from ..core.model import NO_PROVENANCE, Provenance
from ..core.repository import BRANCH, LABEL, Author, Repository
from ..errors import AlreadyExists, NotFound
from .overlay import (DB_NAME, Overlay, OverlayInfo, commit_overlay, open_overlay, staged_bytes,
                      status)
from .writable import WritableFS


@dataclass(frozen=True)
class WritableRequest:
    repo: str
    branch: str
    new: bool  # start from an empty tree (the branch must not exist yet)
    overlay: str  # the overlay's directory
    mountpoint: str
    uid: int  # who asks for the mount
    gid: int
    owner: tuple[int, int] | None = None  # --uid/--gid: who the bundle's entries belong to
    create: bool = False  # the branch's head, or an empty tree when there is no branch yet


def _new_info(repo: Repository, req: WritableRequest) -> OverlayInfo:
    repo.get_repo(req.repo)
    head = repo.ref_head(req.repo, BRANCH, req.branch)
    if req.new or (req.create and head is None):  # an empty tree; the commit makes the branch
        repo.check_ref_name(req.repo, BRANCH, req.branch)
        if head is not None:
            raise AlreadyExists(f"branch {req.branch!r} of {req.repo!r} exists already; mount it "
                                f"with 'datamonfs mount --rw {req.repo}:{req.branch} MOUNTPOINT'")
        return OverlayInfo(req.repo, req.branch, "", "", req.mountpoint, time.time(),
                           time.time_ns(), req.uid, *_owner(req))
    if head is None and repo.ref_head(req.repo, LABEL, req.branch) is not None:
        raise NotFound(f"{req.repo}:{req.branch} is a label, not a branch: labels name one "
                       f"bundle and do not move; mount it read-only, or make a branch from it "
                       f"('datamonfs branch create {req.repo}:{req.branch} NEW-BRANCH') and "
                       f"mount that with --rw")
    if head is None:
        raise NotFound(f"no branch {req.branch!r} in repo {req.repo!r}; start one with "
                       f"'datamonfs mount --rw --new {req.repo} MOUNTPOINT --branch {req.branch}'")
    bundle = repo.get_bundle(req.repo, head.bundle)
    return OverlayInfo(req.repo, req.branch, bundle.id, bundle.tree, req.mountpoint, time.time(),
                       bundle.time, req.uid, *_owner(req))


def sync_mount(mountpoint: str) -> None:
    """syncfs(2) of a mount: the kernel writes back its dirty pages, and waits for them."""
    fd = os.open(mountpoint, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if _libc.syncfs(fd):
            raise OSError(ctypes.get_errno(), f"syncfs of {mountpoint} failed")
    finally:
        os.close(fd)


_libc = ctypes.CDLL(None, use_errno=True)


def _owner(req: WritableRequest) -> tuple[int, int]:
    return req.owner or (req.uid, req.gid)


class WritableSession:
    def __init__(self, repo: Repository, ov: Overlay, fs: WritableFS, recovered: str | None):
        self.repo = repo
        self.ov = ov
        self.fs = fs
        self.recovered = recovered  # a commit a crash interrupted, finished on opening

    @classmethod
    def open(cls, repo: Repository, reader: ChunkReader, req: WritableRequest) -> "WritableSession":
        """Blocking: resume the overlay in req.overlay, or start one on the branch."""
        exists = os.path.exists(os.path.join(req.overlay, DB_NAME))
        info = None if exists else _new_info(repo, req)
        ov, finished = open_overlay(req.overlay, repo, lambda chunks: FileReader(reader, chunks),
                                    info)
        if (ov.info.repo, ov.info.branch) != (req.repo, req.branch):
            ov.close()
            raise AlreadyExists(
                f"{req.mountpoint} has staged changes for {ov.info.repo}:{ov.info.branch} from an "
                f"earlier mount; mount that again, or discard them with "
                f"'datamonfs unmount --discard {req.mountpoint}'")
        # The owner is the overlay's from its creation on (what its nodes' rows mean by
        # "the mount's owner"); an overlay of schema 1 records the one it is resumed with.
        if ov.info.owner_uid < 0:
            ov.set_owner(*_owner(req))
        elif req.owner is not None and req.owner != ov.owner:
            ov.close()
            raise AlreadyExists(
                f"{req.mountpoint} has staged changes made with owner {ov.owner[0]}:"
                f"{ov.owner[1]}; mount it again without --uid/--gid, or commit and unmount "
                "it first")
        fs = WritableFS(ov, *ov.owner)
        return cls(repo, ov, fs, finished.id if finished else None)

    def ready(self) -> dict:
        """What the mount shows, for the mount record."""
        info = self.ov.info
        files = size = 0
        if info.bundle:
            b = self.repo.get_bundle(info.repo, info.bundle)
            files, size = b.files, b.bytes
        return {"repo": info.repo, "branch": info.branch, "bundle": info.bundle, "files": files,
                "bytes": size, "recovered": self.recovered}

    async def commit(self, message: str, author: Author, label: str | None = None,
                     progress=None, provenance: Provenance = NO_PROVENANCE) -> dict:
        """Commit what is staged. `progress(done, total)` (async, optional) is told the
        bytes cut so far, at most a few times a second."""
        await self._write_back()  # before the gate closes: the pages written back pass it
        async with self.fs.gate.alone():
            told = _Throttled(progress, await trio.to_thread.run_sync(staged_bytes, self.ov))
            r = await trio.to_thread.run_sync(commit_overlay, self.ov, self.repo, author, message,
                                              label, told.add, provenance)
            await told.finish()
        return {"bundle": r.bundle.id if r.bundle else None,
                "parent": r.parent.id if r.parent else None,
                "head_before": r.head_before, "forked": r.forked, "repo": self.ov.info.repo,
                "branch": self.ov.info.branch,
                "stats": dict(r.stats.__dict__)}

    async def status(self, limit: int) -> dict:
        """What is staged: at most `limit` changes listed, the counts cover them all."""
        await self._write_back()

        def collect() -> dict:
            changes, counts = [], {"added": 0, "modified": 0, "deleted": 0}
            for line in status(self.ov):
                counts[line["change"]] += 1
                if len(changes) < limit:
                    changes.append(line)
            total = sum(counts.values())
            return {"changes": changes, "counts": counts, "total": total,
                    "truncated": total > len(changes), "bundle": self.ov.info.bundle,
                    "branch": self.ov.info.branch, "repo": self.ov.info.repo}
        return await trio.to_thread.run_sync(collect)

    async def _write_back(self) -> None:
        """Writes the kernel still holds in its page cache (the writeback cache) reach the
        overlay. A file system served in-process, without a kernel, holds none."""
        if self.fs.mountpoint is not None:
            await trio.to_thread.run_sync(sync_mount, self.fs.mountpoint)

    def stats(self) -> dict:
        return {**self.fs.stats, "open_files": self.fs.open_files(), "nodes": len(self.ov.nodes),
                "committing": self.fs.gate.busy}

    def close(self) -> None:
        self.ov.close()


class _Throttled:
    """Progress counted in the commit's thread, reported on the event loop at most every
    PROGRESS_EVERY seconds."""

    PROGRESS_EVERY = 0.2

    def __init__(self, report, total: int):
        self.report, self.total = report, total
        self.done, self.last = 0, 0.0

    def add(self, n: int) -> None:  # in the commit's thread
        self.done += n
        now = time.monotonic()
        if self.report is not None and now - self.last >= self.PROGRESS_EVERY:
            self.last = now
            trio.from_thread.run(self.report, self.done, max(self.total, self.done))

    async def finish(self) -> None:
        if self.report is not None and self.done:
            await self.report(self.done, max(self.total, self.done))
