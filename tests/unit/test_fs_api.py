"""The FUSE operations of both file systems, driven in-process without a kernel: what a
request answers (attributes, bytes, errno) for each kind of request, in seconds."""

from __future__ import annotations

import errno
import os
import stat

import pyfuse3
import pytest
import trio
import trio.testing
from support.files import write
from support.fs_api import ctx, errno_of, fields, readonly_fs, writable_session
from support.planting import Planter, file_entry

from datamonfs.core import ingest
from datamonfs.core.repository import Author, Repository
from datamonfs.core.stores import open_store
from datamonfs.errors import IntegrityError

ROOT = pyfuse3.ROOT_INODE
ADA = Author("Ada", "ada@example.org")


@pytest.fixture
def repo(tmp_path):
    repo = Repository(open_store(str(tmp_path / "store")))
    repo.create_repo("r", "", ADA)
    src = tmp_path / "src"
    write(src, "big.bin", bytes(range(256)) * 8192)  # 2 MiB: several chunks
    write(src, "sub/small.txt", b"hello\n", 0o600)
    os.symlink("sub/small.txt", src / "link")
    ingest.upload(repo, "r", str(src), "first", ADA, label="v1")
    return repo


def test_readonly_requests(repo):
    fs = readonly_fs(repo, "r:v1")

    async def scenario():
        big = await fs.lookup(ROOT, b"big.bin", ctx())
        assert stat.S_ISREG(big.st_mode) and big.st_size == 2 << 20
        sub = await fs.lookup(ROOT, b"sub", ctx())
        small = await fs.lookup(sub.st_ino, b"small.txt", ctx())
        assert stat.S_IMODE(small.st_mode) == 0o600
        link = await fs.lookup(ROOT, b"link", ctx())
        assert await fs.readlink(link.st_ino, ctx()) == b"sub/small.txt"
        info = await fs.open(big.st_ino, os.O_RDONLY, ctx())
        data = bytes(range(256)) * 8192
        for off, n in ((0, 4096), (1_000_000, 300_000), ((2 << 20) - 10, 100), (5, 0)):
            assert bytes(await fs.read(info.fh, off, n)) == data[off:off + n]
        await fs.release(info.fh)
        assert await errno_of(fs.lookup(ROOT, b"missing", ctx())) == errno.ENOENT
        assert await errno_of(fs.open(big.st_ino, os.O_WRONLY, ctx())) == errno.EROFS
        assert await errno_of(fs.unlink(ROOT, b"big.bin", ctx())) == errno.EROFS
        assert await errno_of(fs.open(sub.st_ino, os.O_RDONLY, ctx())) == errno.EISDIR
        assert await errno_of(fs.read(999, 0, 1)) == errno.EBADF
        assert await fs.getxattr(ROOT, b"user.datamonfs.repo", ctx()) == b"r"

    trio.run(scenario)


@pytest.mark.expect_log("failed")
def test_readonly_checks_an_inline_chunk_list_when_the_file_is_opened(tmp_path):
    """A listing does not check files' inline chunk lists (a walk never reads them): a bad
    one fails the open, with EIO and no byte; a strict read of the tree refuses it."""
    planter = Planter("file://" + str(tmp_path / "store"))
    planter.repo.create_repo("r", "", ADA)
    h = planter.chunk(b"hello!")
    tree = planter.tree([file_entry("good", [(h, 6)]), file_entry("short", [(h, 6)], size=7)])
    planter.bundle(tree, 2, 13)
    fs = readonly_fs(planter.repo, "r:bad")

    async def scenario():
        names = []
        for name in (b"good", b"short"):
            attr = await fs.lookup(ROOT, name, ctx())
            names.append((name, attr.st_size))
            if name == b"short":
                assert await errno_of(fs.open(attr.st_ino, os.O_RDONLY, ctx())) == errno.EIO
            else:
                fh = (await fs.open(attr.st_ino, os.O_RDONLY, ctx())).fh
                assert bytes(await fs.read(fh, 0, 100)) == b"hello!"
                await fs.release(fh)
        assert names == [(b"good", 6), (b"short", 7)]

    trio.run(scenario)
    with pytest.raises(IntegrityError, match="'short': chunk sizes do not add up"):
        list(planter.repo.trees.entries(tree))


def test_writable_requests_and_commit(repo, tmp_path):
    with writable_session(repo, "r", str(tmp_path / "overlay")) as session:
        fs = session.fs

        async def scenario():
            info, attr = await fs.create(ROOT, b"new.txt", 0o644, os.O_WRONLY, ctx())
            assert await fs.write(info.fh, 0, b"0123456789") == 10
            assert await fs.write(info.fh, 20, b"end") == 3  # leaves a hole of zeros
            assert bytes(await fs.read(info.fh, 0, 100)) == b"0123456789" + bytes(10) + b"end"
            await fs.release(info.fh)
            big = await fs.lookup(ROOT, b"big.bin", ctx())
            info = await fs.open(big.st_ino, os.O_RDWR, ctx())
            assert await fs.write(info.fh, 1, b"XY") == 2  # in the middle of a base file
            assert bytes(await fs.read(info.fh, 0, 4)) == b"\x00XY\x03"
            await fs.release(info.fh)
            shorter = pyfuse3.EntryAttributes()
            shorter.st_size = 1000
            attr = await fs.setattr(big.st_ino, shorter, fields(update_size=True), None, ctx())
            assert attr.st_size == 1000
            d = await fs.mkdir(ROOT, b"dir", 0o755, ctx())
            await fs.rename(ROOT, b"new.txt", d.st_ino, b"moved.txt", 0, ctx())
            assert await errno_of(fs.lookup(ROOT, b"new.txt", ctx())) == errno.ENOENT
            sub = await fs.lookup(ROOT, b"sub", ctx())
            await fs.unlink(sub.st_ino, b"small.txt", ctx())
            assert await errno_of(fs.symlink(ROOT, b"out", b"../etc", ctx())) == errno.EPERM
            assert await errno_of(fs.create(ROOT, b"x" * 256, 0o644, os.O_WRONLY, ctx())) == \
                errno.ENAMETOOLONG
            assert await errno_of(fs.mkdir(ROOT, b"dir", 0o755, ctx())) == errno.EEXIST
            return await session.commit("edits", ADA)

        result = trio.run(scenario)
    b = repo.get_bundle("r", result["bundle"])
    assert repo.resolve("r:main").id == b.id and b.parents == (repo.resolve("r:v1").id,)
    tree = {path: entry for path, entry in repo.walk(b)}
    assert "sub/small.txt" not in tree and tree["dir/moved.txt"].size == 23
    assert tree["big.bin"].size == 1000


def test_a_walk_reads_the_next_subdirectories_ahead_and_sees_them_right(tmp_path, monkeypatch):
    from datamonfs.core.trees import claims_of
    from datamonfs.fs.readonly import WALK_AHEAD

    repo = Repository(open_store(str(tmp_path / "store")))
    repo.create_repo("r", "", ADA)
    src = tmp_path / "src"
    dirs = [f"d{i}" for i in range(WALK_AHEAD + 3)]
    for i, d in enumerate(dirs):
        write(src, f"{d}/f.txt", b"x" * i)
        (src / d / "inner").mkdir()
    write(src, "top.txt", b"top")
    ingest.upload(repo, "r", str(src), "first", ADA, label="v1")
    fs = readonly_fs(repo, "r:v1")
    listed: list[tuple[bytes, pyfuse3.EntryAttributes]] = []
    monkeypatch.setattr(pyfuse3, "readdir_reply",
                        lambda token, name, attr, off: listed.append((name, attr)) or True)

    def ahead(name: str) -> bool:  # its layout loaded or loading, without a visit
        entry = repo.trees.lookup(repo.resolve("r:v1").tree, name)
        key = (entry.tree, claims_of(entry))
        return key in fs.pages.layouts or fs.pages.layouts.loading(key)

    async def scenario():
        await fs.readdir(await fs.opendir(ROOT, ctx()), 0, None)
        await trio.testing.wait_all_tasks_blocked()  # the loads ahead have started
        assert [n for n, _ in listed] == [d.encode() for d in dirs] + [b"top.txt"]
        assert [ahead(d) for d in dirs] == [True] * WALK_AHEAD + [False] * 3
        for i, (_, attr) in enumerate(listed[:-1]):
            got = await fs.getattr(attr.st_ino, ctx())  # a visit: the window moves on
            await trio.testing.wait_all_tasks_blocked()
            assert stat.S_ISDIR(got.st_mode) and got.st_nlink == 3 and got.st_ino == attr.st_ino
            assert all(ahead(d) for d in dirs[:i + 1 + WALK_AHEAD])
            f = await fs.lookup(attr.st_ino, b"f.txt", ctx())
            assert f.st_size == i and stat.S_ISREG(f.st_mode)

    trio.run(scenario)
