"""What the file systems answer for the items of issue 12, request by request without a
kernel: block counts, link counts, name limits, times, owners, hard links,
RENAME_EXCHANGE, fallocate, extended attributes; and what a commit records of them.
tests/integration/test_posix_writable.py checks the same through a mount, as root and as
another user, beside a plain directory."""

from __future__ import annotations

import errno
import os

import pyfuse3
import pytest
import trio
from support.files import write
from support.fs_api import ctx, errno_of, fields, readonly_fs, writable_session

from datamonfs.core import ingest
from datamonfs.core.repository import Author, Repository
from datamonfs.core.stores import open_store

ROOT = pyfuse3.ROOT_INODE
ADA = Author("Ada", "ada@example.org")
BIG = 2 << 20
USER, GROUP = 4321, 4400
KEEP_SIZE, PUNCH_HOLE = 0x01, 0x02


@pytest.fixture
def repo(tmp_path):
    repo = Repository(open_store(str(tmp_path / "store")))
    repo.create_repo("r", "", ADA)
    src = tmp_path / "src"
    write(src, "big.bin", bytes(range(256)) * (BIG // 256))
    write(src, "sub/deeper/x.txt", b"x")
    write(src, "sub/y.txt", b"y")
    os.setxattr(src / "sub" / "y.txt", "user.tag", b"from the bundle")
    ingest.upload(repo, "r", str(src), "first", ADA, label="v1")
    return repo


def test_read_only_blocks_link_counts_names_times(repo):
    fs = readonly_fs(repo, "r:v1")

    async def scenario():
        big = await fs.lookup(ROOT, b"big.bin", ctx())
        assert (big.st_blocks, big.st_nlink) == (BIG // 512, 1)  # a bundle file: its size
        assert big.st_atime_ns == big.st_mtime_ns == big.st_ctime_ns
        sub = await fs.lookup(ROOT, b"sub", ctx())
        assert (sub.st_nlink, (await fs.getattr(ROOT, ctx())).st_nlink) == (3, 3)
        assert await errno_of(fs.lookup(ROOT, b"x" * 256, ctx())) == errno.ENAMETOOLONG
        assert await errno_of(fs.lookup(ROOT, b"x" * 255, ctx())) == errno.ENOENT
        y = await fs.lookup(sub.st_ino, b"y.txt", ctx())
        assert await fs.getxattr(y.st_ino, b"user.tag", ctx()) == b"from the bundle"

    trio.run(scenario)


def test_writable_requests_and_what_a_commit_records(repo, tmp_path):
    with writable_session(repo, "r", str(tmp_path / "overlay")) as session:
        fs = session.fs

        async def scenario():
            # blocks: a bundle file counts its size; a page written over it counts once
            big = await fs.lookup(ROOT, b"big.bin", ctx())
            assert big.st_blocks == BIG // 512
            info = await fs.open(big.st_ino, os.O_RDWR, ctx())
            await fs.write(info.fh, 4096, b"w" * 4096)
            await fs.release(info.fh)
            assert (await fs.getattr(big.st_ino, ctx())).st_blocks == BIG // 512
            # owners: the creator's; a sparse file counts what it holds
            info, f = await fs.create(ROOT, b"f", 0o600, os.O_RDWR, ctx(USER, GROUP))
            assert (f.st_uid, f.st_gid) == (USER, GROUP)
            await fs.write(info.fh, 1 << 30, b"abc")
            attr = await fs.getattr(f.st_ino, ctx())
            assert (attr.st_size, attr.st_blocks) == ((1 << 30) + 3, 8)
            # fallocate: reserve (KEEP_SIZE), then punch what was written
            await fs.fallocate(f.st_ino, KEEP_SIZE, 0, 1 << 20)
            assert (await fs.getattr(f.st_ino, ctx())).st_blocks >= (1 << 20) // 512
            await fs.fallocate(f.st_ino, PUNCH_HOLE | KEEP_SIZE, 1 << 30, 3)
            assert bytes(await fs.read(info.fh, 1 << 30, 3)) == bytes(3)
            assert await errno_of(fs.fallocate(f.st_ino, PUNCH_HOLE, 0, 1)) == errno.EOPNOTSUPP
            shorter = pyfuse3.EntryAttributes()
            shorter.st_size = 5
            await fs.setattr(f.st_ino, shorter, fields(update_size=True), None, ctx())
            await fs.write(info.fh, 0, b"hello")
            await fs.release(info.fh)
            # atime is kept apart from mtime
            times = pyfuse3.EntryAttributes()
            times.st_atime_ns, times.st_mtime_ns = 7, 8_000_000_000
            attr = await fs.setattr(f.st_ino, times, fields(update_atime=True, update_mtime=True),
                                    None, ctx())
            assert (attr.st_atime_ns, attr.st_mtime_ns) == (7, 8_000_000_000)
            # a hard link: one inode, two names
            linked = await fs.link(f.st_ino, ROOT, b"g", ctx())
            assert (linked.st_ino, linked.st_nlink) == (f.st_ino, 2)
            await fs.setxattr(f.st_ino, b"user.a", b"\x00\xff", ctx())
            assert await errno_of(fs.setxattr(f.st_ino, b"security.x", b"1", ctx())) == \
                errno.EOPNOTSUPP
            assert await errno_of(fs.getxattr(f.st_ino, b"user.b", ctx())) == pyfuse3.ENOATTR
            # RENAME_EXCHANGE of a file and a directory; link counts follow
            sub = await fs.lookup(ROOT, b"sub", ctx())
            await fs.rename(ROOT, b"g", ROOT, b"sub", pyfuse3.RENAME_EXCHANGE, ctx())
            assert (await fs.lookup(ROOT, b"sub", ctx())).st_ino == f.st_ino
            assert (await fs.lookup(ROOT, b"g", ctx())).st_ino == sub.st_ino
            await fs.mkdir(ROOT, b"made", 0o755, ctx())
            assert (await fs.getattr(ROOT, ctx())).st_nlink == 4  # g (was sub), made
            assert await errno_of(fs.lookup(ROOT, b"n" * 256, ctx())) == errno.ENAMETOOLONG
            assert await errno_of(fs.mknod(ROOT, b"fifo", 0o10644, 0, ctx())) == errno.EPERM
            return await session.commit("attributes", ADA)

        result = trio.run(scenario)
    tree = dict(repo.walk(repo.get_bundle("r", result["bundle"])))
    f, sub = tree["f"], tree["sub"]  # one file under two names: two entries, one content
    assert f.same_as(sub) and f.chunks == sub.chunks and f.size == 5
    assert f.xattrs == (("user.a", b"\x00\xff"),) and f.mtime == 8_000_000_000
    assert tree["g/y.txt"].xattrs == (("user.tag", b"from the bundle"),)
    assert tree["g/deeper/x.txt"].size == 1 and tree["made"].kind == "dir"
