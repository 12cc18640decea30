"""File system operations driven in-process, without a kernel (as S3QL's t3_fs_api):
the pyfuse3 handlers are plain async methods, called here on trio as pyfuse3 would."""

from __future__ import annotations

import os
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Iterator

import pyfuse3

from datamonfs.cache import CachedChunkReader, FileReader
from datamonfs.core.repository import Repository
from datamonfs.fs.readonly import MountInfo, ReadOnlyFS
from datamonfs.fs.writable_session import WritableRequest, WritableSession


def ctx(uid: int | None = None, gid: int | None = None):
    """A request context as the kernel sends it (pyfuse3's own cannot be built)."""
    return SimpleNamespace(uid=os.getuid() if uid is None else uid,
                           gid=os.getgid() if gid is None else gid, pid=os.getpid(), umask=0o022)


async def errno_of(call) -> int:
    """The errno a request fails with (it must fail)."""
    try:
        await call
    except pyfuse3.FUSEError as e:
        return e.errno
    raise AssertionError("the request succeeded")


def fields(**changed):
    """The SetattrFields of a setattr call: only what `changed` names is set."""
    names = ("update_atime", "update_mtime", "update_ctime", "update_mode", "update_uid",
             "update_gid", "update_size")
    return SimpleNamespace(**{n: changed.get(n, False) for n in names})


def readonly_fs(repo: Repository, ref: str) -> ReadOnlyFS:
    bundle = repo.resolve(ref)
    reader = CachedChunkReader(None, repo.chunks)
    return ReadOnlyFS(repo, reader, bundle, MountInfo(ref, os.getuid(), os.getgid()), FileReader)


@contextmanager
def writable_session(repo: Repository, repo_name: str, overlay_dir: str, branch: str = "main",
                     new: bool = False) -> Iterator[WritableSession]:
    req = WritableRequest(repo_name, branch, new, overlay_dir, "/nowhere", os.getuid(),
                          os.getgid())
    session = WritableSession.open(repo, CachedChunkReader(None, repo.chunks), req)
    try:
        yield session
    finally:
        session.close()
