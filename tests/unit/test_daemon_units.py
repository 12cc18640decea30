"""Pieces of the daemon and file system that need no mount: framing, inode numbers, registry."""

from __future__ import annotations

import os

import pytest
import trio
import trio.testing

from datamonfs.daemon import protocol, registry
from datamonfs.daemon.client import error_for
from datamonfs.errors import IntegrityError, NotFound, StoreUnavailable
from datamonfs.fs.inodes import ROOT, InodeTable, child_ino, position
from datamonfs.fs.pages import Layout


async def _lines(payload: bytes, limit: int = 16) -> list:
    send, recv = trio.testing.memory_stream_one_way_pair()
    await send.send_all(payload)
    await send.aclose()
    chan = protocol.LineStream(trio.StapledStream(trio.testing.MemorySendStream(), recv),
                               limit)
    out = []
    while True:
        try:
            line = await chan.receive_line()
        except protocol.LineTooLong:
            out.append("TOO LONG")
            continue
        if line is None:
            return out
        out.append(line)


@pytest.mark.trio
async def test_line_framing_caps_long_lines_and_resumes():
    assert await _lines(b"a\nbb\n\nlast") == [b"a", b"bb", b"", b"last"]
    assert await _lines(b"x" * 40 + b"\nok\n" + b"y" * 17 + b"\nfine\n") == [
        "TOO LONG", b"ok", "TOO LONG", b"fine"]
    assert await _lines(b"z" * 100) == ["TOO LONG"]


def test_decode_refuses_what_is_not_a_request():
    for bad in (b"{", b"[]", b"\xff", b"[" * 100_000, b"42"):
        with pytest.raises(protocol.ProtocolError):
            protocol.decode(bad)
    assert protocol.request_id({"id": True}) is None
    assert protocol.request_id({"id": "x"}) == "x"


def test_reply_errors_map_to_exit_statuses():
    assert isinstance(error_for({"code": "not_found", "message": "m"}), NotFound)
    assert error_for({"code": "unavailable", "message": "m"}).exit_code == 3
    assert isinstance(error_for({"code": "integrity", "message": "m"}), IntegrityError)
    e = error_for({"code": "not_empty", "message": "m"})
    assert e.exit_code == 1 and e.code == "not_empty"
    assert isinstance(error_for({"code": "daemon_unavailable"}), StoreUnavailable)


def test_inode_numbers_are_positions():
    table = InodeTable("t" * 64, (1, 1))
    root = table.dir(ROOT)
    assert root.slot == 1 and len(table) == 1
    ino = child_ino(root.slot, 0)
    assert ino != ROOT and position(ino) == (1, 0)
    sub = table.add_dir(child_ino(1, 5), ROOT, "s" * 64, 0, (1, 1))
    assert table.add_dir(child_ino(1, 5), ROOT, "s" * 64, 0, (1, 1)) is sub  # once per directory
    assert sub.depth == 1
    assert table.holder(child_ino(sub.slot, 123)) == (sub, 123)
    assert table.holder(ROOT) is None and table.holder(child_ino(99, 0)) is None
    with pytest.raises(OverflowError):
        child_ino(1, 1 << 32)


def test_layout_finds_pages_by_position_and_name():
    lay = Layout("t", ("p0", "p1", "p2"), ("a", "k", "t"), (0, 1024, 2048), 2100)
    assert [lay.page_of(i) for i in (0, 1023, 1024, 2099)] == [0, 0, 1, 2]
    assert [lay.page_for_name(n) for n in ("0", "a", "j", "k", "zz")] == [-1, 0, 0, 1, 2]


@pytest.mark.expect_log('unreadable mount registry')
def test_registry_survives_garbage(tmp_path):
    path = str(tmp_path / "mounts.json")
    assert registry.load(path) == []
    rec = registry.MountRecord("/m", "r:v", "r", "b" * 64, 0, 1, 2, 3.0)
    registry.save(path, [rec])
    assert registry.load(path) == [rec]
    (tmp_path / "mounts.json").write_text("{not json")
    assert registry.load(path) == []


def test_sockets_with_paths_longer_than_sun_path(tmp_path):
    import socket

    from datamonfs.daemon.paths import connect, short_address

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = str(deep / "daemon.sock")
    assert len(path) > 108
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with short_address(path) as addr:
        server.bind(addr)
    server.listen(1)
    try:
        assert os.path.exists(path)
        client = connect(path, timeout=5)
        conn, _ = server.accept()
        client.sendall(b"ping")
        assert conn.recv(4) == b"ping"
        conn.close()
        client.close()
    finally:
        server.close()


@pytest.mark.expect_log('failed')
@pytest.mark.trio
async def test_one_error_table_for_both_file_systems():
    import errno

    import pyfuse3

    from datamonfs.fs.operations import FileSystem, guarded
    from datamonfs.fs.vfs import FsError

    class Failing(FileSystem[str]):
        @guarded
        async def fail(self, exc):
            raise exc

    fs = Failing(0, 0)
    for exc, err, counted in [(pyfuse3.FUSEError(errno.ENOENT), errno.ENOENT, False),
                              (FsError(errno.EEXIST), errno.EEXIST, False),
                              (StoreUnavailable("down"), errno.EIO, True),
                              (IntegrityError("bad"), errno.EIO, True),
                              (OSError(errno.EDQUOT, "quota"), errno.EDQUOT, True),
                              (ValueError("bug"), errno.EIO, True)]:
        before = fs.stats["errors"]
        with pytest.raises(pyfuse3.FUSEError) as got:
            await fs.fail(exc)
        assert got.value.errno == err, exc
        assert fs.stats["errors"] - before == counted, exc
    with pytest.raises(pyfuse3.FUSEError) as got:
        await fs.read(7, 0, 10)  # a handle never given
    assert got.value.errno == errno.EBADF


def test_a_daemon_start_reports_its_error_by_code():
    from datamonfs.daemon.service import AlreadyRunning, reported_pid

    assert reported_pid("ok 42\n") == 42
    with pytest.raises(AlreadyRunning) as got:
        reported_pid("error 1 already_running another daemon (pid 7) serves it\n")
    assert got.value.code == "already_running"
    with pytest.raises(Exception) as got:  # the words alone no longer make it AlreadyRunning
        reported_pid("error 3 unavailable the store is already running late\n")
    assert not isinstance(got.value, AlreadyRunning)
    assert (got.value.exit_code, got.value.code) == (3, "unavailable")
