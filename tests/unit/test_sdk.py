"""The Python API (datamonfs.open, Repo, Bundle, NewBundle) on both stores: reads through
the block cache, new bundles from the branch head, queries, path history, bad input."""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
import threading

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import datamonfs
from datamonfs.sdk.paths import split_path
from support.files import write
from support.sdk import open_store, tree_of

ADA = ("Ada", "ada@example.org")


@pytest.fixture
def store(store_url, tmp_path):
    s = open_store(store_url, tmp_path)
    yield s
    s.close()


@pytest.fixture
def repo(store):
    return store.create_repo("sales", "test data")


def first(repo, files: dict[str, bytes], **kw) -> datamonfs.Bundle:
    with repo.new_bundle(message="first", **kw) as nb:
        for path, data in files.items():
            nb.write_bytes(path, data)
    return nb.bundle


# -- reading ----------------------------------------------------------------


def test_a_bundle_read_back_path_by_path(repo):
    b = first(repo, {"a.csv": b"x,y\n1,2\n", "tables/t1.txt": b"one", "tables/deep/t2": b""},
              label="v1")
    assert b == repo.bundle("v1") == repo.head() == repo._store.bundle("sales:v1")
    assert (b.files, b.bytes, b.message, b.author, b.parents) == (3, 11, "first", "Ada", ())
    assert [i.path for i in b.ls()] == ["a.csv", "tables"]
    assert [(i.path, i.kind, i.size) for i in b.ls("tables")] == [
        ("tables/deep", "dir", 0), ("tables/t1.txt", "file", 3)]
    assert [i.path for i in b.walk()] == ["a.csv", "tables/deep/t2", "tables/t1.txt"]
    assert [i.path for i in b.walk(pattern="*.txt")] == ["tables/t1.txt"]
    assert [i.path for i in b.walk("tables", dirs=True)] == [
        "tables/deep", "tables/deep/t2", "tables/t1.txt"]
    assert b.read_text("a.csv") == "x,y\n1,2\n"
    assert b.read_bytes("a.csv", 2, 5) == b"y\n1"
    assert b.stat("tables").files == 2 and b.stat("").kind == "dir"
    assert b.exists("tables/deep/t2") and not b.exists("tables/nope")
    assert b.to_json()["id"] == b.id and "inputs" not in b.to_json()


def test_open_is_a_seekable_file_reading_lazily(store, repo):
    data = os.urandom(3 << 20)  # several chunks
    b = first(repo, {"big.bin": data, "lines.txt": b"one\ntwo\nthree\n"})
    with b.open("big.bin") as f:
        assert f.seekable() and f.readable() and f.size == len(data)
        f.seek(1_000_000)
        assert f.read(10) == data[1_000_000:1_000_010]
        f.seek(-5, io.SEEK_END)
        assert f.read() == data[-5:] and f.tell() == len(data)
        f.seek(0)
        assert f.read() == data
    with b.open("lines.txt") as f:
        assert f.readline() == b"one\n" and list(f) == [b"two\n", b"three\n"]
    assert f.closed


def test_the_content_address_names_the_content(repo):
    b = first(repo, {"a": b"same", "dir/b": b"same", "c": b"other", "l": b""})
    with repo.new_bundle(message="link") as nb:
        nb.symlink("dir/link", "../a")
    b2 = nb.bundle
    assert b.stat("a").address == b.stat("dir/b").address == b2.stat("a").address
    assert b.stat("a").address != b.stat("c").address
    assert b2.stat("dir").address != b.stat("dir").address  # a directory's: its tree
    assert b2.stat("dir/link").target == "../a"
    assert b2.stat("dir/link").to_json()["target"] == "../a"


def test_directory_listings_come_in_pages(tmp_path):
    s = open_store("file://" + str(tmp_path / "store"), tmp_path)
    r = s.create_repo("r")
    with r.new_bundle(message="wide") as nb:
        for i in range(2500):  # three pages of the tree
            nb.write_bytes(f"wide/f{i:05d}", b"")
    b = nb.bundle
    pages, after = [], None
    while True:
        page = b.ls("wide", limit=700, after=after)
        if not page:
            break
        pages.append(page)
        after = page[-1].name
    assert [len(p) for p in pages] == [700, 700, 700, 400]
    assert [i.name for p in pages for i in p] == [f"f{i:05d}" for i in range(2500)]
    assert [i.name for i in b.ls("wide", after="f02497")] == ["f02498", "f02499"]


def test_download_and_diff(repo, tmp_path):
    old = first(repo, {"keep": b"1", "change": b"2", "drop/x": b"3"})
    with repo.new_bundle(message="second") as nb:
        nb.write_bytes("change", b"22")
        nb.remove("drop")
        nb.write_bytes("new/y", b"4")
    new = nb.bundle
    assert [(c.path, c.change, c.old_size, c.new_size) for c in old.diff(new)] == [
        ("change", "modified", 1, 2), ("drop/x", "deleted", 1, None),
        ("new/y", "added", None, 1)]
    new.download(str(tmp_path / "out"), pattern="new/**")
    assert os.listdir(tmp_path / "out") == ["new"]
    assert (tmp_path / "out" / "new" / "y").read_bytes() == b"4"


# -- writing ----------------------------------------------------------------


def test_a_new_bundle_starts_from_the_head_and_reuses_what_it_did_not_touch(repo):
    base = first(repo, {f"big/{i}": os.urandom(1000) for i in range(50)} | {"small": b"s"})
    with repo.new_bundle(message="touch one") as nb:
        nb.write_bytes("small", b"changed")
    b = nb.bundle
    assert b.parents == (base.id,) and nb.created and not nb.forked
    assert b.stat("big").address == base.stat("big").address  # the subtree, unread
    assert nb.stats.chunks_uploaded == 1
    assert tree_of(b) == {**tree_of(base), "small": b"changed"}


def test_every_way_of_writing(repo, tmp_path):
    first(repo, {"old.txt": b"old", "keep/k": b"k"})
    src = tmp_path / "src"
    write(src, "r1.txt", b"report", 0o600)
    write(src, "sub/r2.txt", b"two")
    os.symlink("r1.txt", src / "r1.lnk")
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w:gz") as t:
        for name, data in (("t/one", b"1"), ("t/two", b"22")):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o640
            t.addfile(info, io.BytesIO(data))
    tar.seek(0)
    with repo.new_bundle(message="all") as nb:
        nb.write_text("notes.txt", "héllo")
        nb.put_file(str(src / "r1.txt"), "files/r1.txt")
        nb.put_dir(str(src), "reports")
        nb.put_dir(str(src), "keep")  # onto an existing directory: merged
        nb.put_stream("stream.bin", io.BytesIO(b"s" * 300_000))
        assert nb.put_tar(tar, "archive") == 2
        with nb.open("w/opened.bin") as f:
            f.write(b"written ")
            f.write(b"through open")
        nb.copy(repo.head(), "old.txt", "copied/old.txt")
        nb.symlink("latest", "notes.txt")
        nb.mkdir("empty/dir")
        nb.remove("old.txt")
    b = nb.bundle
    got = tree_of(b)
    assert got["notes.txt"] == "héllo".encode()
    assert got["files/r1.txt"] == b"report" and b.stat("files/r1.txt").mode == 0o600
    assert got["reports/sub/r2.txt"] == b"two" and got["reports/r1.lnk"] == "r1.txt"
    assert got["keep/k"] == b"k" and got["keep/r1.txt"] == b"report"
    assert got["stream.bin"] == b"s" * 300_000
    assert (got["archive/t/one"], got["archive/t/two"]) == (b"1", b"22")
    assert b.stat("archive/t/two").mode == 0o640
    assert got["w/opened.bin"] == b"written through open"
    assert got["copied/old.txt"] == b"old" and "old.txt" not in got
    assert got["latest"] == "notes.txt"
    assert b.stat("empty/dir").kind == "dir" and b.ls("empty/dir") == []


def test_upload_is_the_folder_with_the_head_as_parent(repo, tmp_path):
    base = first(repo, {"gone": b"x"})
    write(tmp_path / "f", "a/b", b"ab")
    up = repo.upload(str(tmp_path / "f"), "folder", label="v2")
    assert up.created and up.bundle.parents == (base.id,) and tree_of(up.bundle) == {"a/b": b"ab"}
    again = repo.upload(str(tmp_path / "f"), "same", label="v3")
    assert not again.created and again.bundle == up.bundle and repo.bundle("v3") == up.bundle


def test_a_block_that_raises_records_nothing(repo, tmp_path, monkeypatch):
    base = first(repo, {"a": b"1"})
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "spool"))
    os.makedirs(tmp_path / "spool")
    with pytest.raises(RuntimeError, match="boom"):
        with repo.new_bundle(message="never", label="never") as nb:
            nb.write_bytes("b", b"2")
            with nb.open("big.bin") as f:
                f.write(os.urandom(9 << 20))  # past the spool's memory: a temp file
            raise RuntimeError("boom")
    assert repo.head() == base and [b.id for b in repo.bundles()] == [base.id]
    assert repo.labels() == [] and os.listdir(tmp_path / "spool") == []
    with pytest.raises(datamonfs.DatamonError, match="aborted"):
        nb.write_bytes("c", b"3")
    with repo.new_bundle(message="nothing") as nb:  # no change: no bundle
        pass
    assert not nb.created and nb.bundle == base
    with repo.new_bundle(message="the same again") as nb:  # same bytes: the entry is kept
        nb.write_bytes("a", b"1")
    assert not nb.created and nb.bundle == base


def test_links_never_leave_the_bundle(repo):
    base = first(repo, {"d/a": b"1"})
    with pytest.raises(datamonfs.InvalidPath, match="outside"), \
            repo.new_bundle(message="bad link") as nb:
        nb.symlink("up", "../outside")
    with repo.new_bundle(message="a deep link") as nb:
        nb.symlink("d/e/up", "../../d/a")
    deep = nb.bundle
    with pytest.raises(datamonfs.InvalidPath, match="outside"), \
            repo.new_bundle(message="moved up") as nb:
        nb.copy(deep, "d/e", "top")  # up -> ../../d/a would climb out of top/
    with repo.new_bundle(message="moved down") as nb:
        nb.copy(deep, "d/e", "x/y/z")
        nb.copy(deep, "d/e", "q/r")  # as deep as before: fine
    assert nb.bundle.stat("x/y/z/up").target == "../../d/a"
    assert repo.bundle("main~1") == deep and repo.bundle("main~2") == base


def test_paths_that_leave_the_bundle_are_refused(repo):
    b = first(repo, {"a/b": b"1"})
    for bad in ("../x", "a/../../x", "/etc/passwd", "a/\0b", "x" * 300):
        with pytest.raises(datamonfs.InvalidPath):
            b.read_bytes(bad)
        with pytest.raises(ValueError):
            split_path(bad)
        with pytest.raises(datamonfs.InvalidPath), repo.new_bundle(message="no") as nb:
            nb.write_bytes(bad, b"")
    assert split_path("a//./b/") == ("a", "b") and split_path("") == split_path(".") == ()
    with pytest.raises(FileNotFoundError, match="no file or directory 'a/c'"):
        b.stat("a/c")
    with pytest.raises(IsADirectoryError):
        b.open("a")
    with pytest.raises(NotADirectoryError):
        b.ls("a/b")
    with pytest.raises(datamonfs.IsADirectory), repo.new_bundle(message="no") as nb:
        nb.write_bytes("a", b"")  # a directory is there
    with pytest.raises(datamonfs.NotADirectory), repo.new_bundle(message="no") as nb:
        nb.write_bytes("a/b/c", b"")  # a file is there
    with pytest.raises(FileNotFoundError), repo.new_bundle(message="no") as nb:
        nb.remove("nope")
    assert repo.head() == b


def test_hostile_tar_members_are_refused(repo):
    def tar_of(*members) -> io.BytesIO:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as t:
            for info in members:
                t.addfile(info, io.BytesIO(b"x" * info.size))
        out.seek(0)
        return out

    def member(name, kind=tarfile.REGTYPE, link=""):
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.size = kind, link, 1 if kind == tarfile.REGTYPE else 0
        return info

    base = first(repo, {"a": b"1"})
    for bad, error in ((member("../escape"), datamonfs.InvalidPath),
                       (member("/abs"), datamonfs.InvalidPath),
                       (member("l", tarfile.SYMTYPE, "/etc/passwd"), datamonfs.InvalidPath),
                       (member("h", tarfile.LNKTYPE, "a"), datamonfs.DatamonError),
                       (member("dev", tarfile.CHRTYPE), datamonfs.DatamonError)):
        with pytest.raises(error), repo.new_bundle(message="tar") as nb:
            nb.put_tar(tar_of(member("fine"), bad))
    with pytest.raises(datamonfs.DatamonError, match="not a readable tar"), \
            repo.new_bundle(message="tar") as nb:
        nb.put_tar(io.BytesIO(b"not a tar at all" * 100))
    assert repo.head() == base and len(repo.bundles()) == 1


def test_two_new_bundles_on_one_branch_at_once_both_survive(repo):
    base = first(repo, {"a": b"1"})
    started = threading.Barrier(2)
    made = {}

    def writer(name: str) -> None:
        with repo.new_bundle(message=name) as nb:
            started.wait(timeout=30)
            nb.write_bytes(name, name.encode())
        made[name] = nb.bundle

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("x", "y")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert set(made) == {"x", "y"} and all(b.parents == (base.id,) for b in made.values())
    log = [r.bundle for r in repo.ref_log("branch", "main")]
    assert set(log[:2]) == {made["x"].id, made["y"].id} and log[2] == base.id
    assert repo.head() in made.values()


def test_names_and_authors_are_checked_before_anything_is_written(store, repo, tmp_path):
    first(repo, {"a": b"1"}, label="v1")
    with pytest.raises(datamonfs.AlreadyExists, match="label"):
        repo.new_bundle(branch="v1")
    with pytest.raises(datamonfs.InvalidName):
        repo.new_bundle(label="bad name")
    with pytest.raises(datamonfs.NotFound):
        store.repo("nope")
    anonymous = datamonfs.open(store.url, config=datamonfs.sdk.store.config_mod.Config(
        store=store.url, cache_dir=str(tmp_path / "cache")))
    with pytest.raises(datamonfs.errors.ConfigError, match="no author"):
        anonymous.repo("sales").new_bundle(message="who?")
    with pytest.raises(datamonfs.DatamonError, match="process"):
        repo.new_bundle(process={"colour": "blue"})


# -- queries ----------------------------------------------------------------


def test_bundles_by_author_time_message_label_and_page(store, tmp_path, store_url):
    r = store.create_repo("q")
    made = []
    for i, who in enumerate([("Ada", "ada@example.org"), ("Bob", "bob@lab.net")] * 2):
        s = open_store(store_url, tmp_path / who[0], who)
        with s.repo("q").new_bundle(message=f"step {i} {'FIX' if i % 2 else 'add'}",
                                    label=f"l{i}") as nb:
            nb.write_bytes("f", str(i).encode())
        made.append(nb.bundle)
    newest_first = [b.id for b in reversed(made)]
    assert [b.id for b in r.bundles()] == newest_first
    assert [b.id for b in r.bundles(author="BOB@")] == [made[3].id, made[1].id]
    assert [b.id for b in r.bundles(grep="fix")] == [made[3].id, made[1].id]
    assert [b.id for b in r.bundles(since=made[1].time, until=made[2].time)] == [
        made[2].id, made[1].id]
    assert [b.id for b in r.bundles(since=made[2].time.isoformat())] == newest_first[:2]
    assert [b.id for b in r.bundles(label="l2")] == [made[2].id]
    assert [b.id for b in r.bundles(limit=2, offset=1)] == newest_first[1:3]
    assert r.bundles(branch="main", author="nobody") == []
    with pytest.raises(datamonfs.NotFound, match="no label 'zz'"):
        r.bundles(label="zz")
    with pytest.raises(datamonfs.DatamonError, match="ISO 8601"):
        r.bundles(since="yesterday-ish")


def test_the_history_of_a_path(repo):
    steps = [{"p/x": b"1", "other": b"a"}, {"other": b"b"}, {"p/x": b"2"}, {"-p/x": b""},
             {"other": b"c"}, {"p/x": b"3"}]
    made = []
    for i, step in enumerate(steps):
        with repo.new_bundle(message=f"s{i}") as nb:
            for path, data in step.items():
                if path.startswith("-"):
                    nb.remove(path[1:])
                else:
                    nb.write_bytes(path, data)
        made.append(nb.bundle)
    history = [(c.bundle, c.change) for c in repo.log("p/x")]
    assert history == [(made[5], "added"), (made[3], "deleted"), (made[2], "modified"),
                       (made[0], "added")]
    assert [c.info.size if c.info else None for c in repo.log("p/x")] == [1, None, 1, 1]
    # p stays, empty, when p/x is removed: a directory changes with what is below it
    assert [(c.bundle, c.change) for c in repo.log("p", limit=2)] == [
        (made[5], "modified"), (made[3], "modified")]
    assert [c.bundle for c in repo.log("p/x", ref="main~3")] == [made[2], made[0]]
    assert list(repo.log("never/there")) == []


# -- a property: what is written is what is read -----------------------------

_names = st.text(st.characters(codec="utf-8", exclude_characters="/\0"), min_size=1,
                 max_size=8).filter(lambda n: n not in (".", ".."))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.dictionaries(st.lists(_names, min_size=1, max_size=3).map("/".join),
                             st.binary(max_size=2000), max_size=8),
       reads=st.lists(st.tuples(st.integers(0, 2100), st.integers(0, 2100)), max_size=4))
def test_written_files_read_back_byte_for_byte(tmp_path_factory, files, reads):
    # a file may not sit where another path needs a directory
    paths = sorted(files)
    files = {p: d for p, d in files.items()
             if not any(q.startswith(p + "/") for q in paths)}
    home = tmp_path_factory.mktemp("prop")
    s = open_store("file://" + str(home / "store"), home)
    r = s.create_repo("r")
    with r.new_bundle(message="prop") as nb:
        for path, data in files.items():
            nb.write_bytes(path, data)
    b = nb.bundle
    assert tree_of(b) == files
    for path, data in files.items():
        with b.open(path) as f:
            for start, n in reads:
                f.seek(start)
                assert f.read(n) == data[start:start + n]
    s.close()


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.characters(codec="utf-8"), max_size=40)
       | st.lists(st.sampled_from(["a", "..", ".", "", "/", "b c", "é", "\0", "x" * 256]),
                  max_size=6).map("/".join))
def test_a_path_either_stays_in_the_bundle_or_is_refused(text):
    """Hostile paths (and URLs after datamon://REPO/): refused with InvalidPath, or names
    that a bundle can hold, none of them '..', joined back without a leading '/'."""
    from datamonfs.sdk.filesystem import _Location

    try:
        names = split_path(text)
    except datamonfs.InvalidPath:
        with pytest.raises(datamonfs.InvalidPath):
            _Location("r/" + text)
        return
    assert all(n not in ("", ".", "..") and "/" not in n and "\0" not in n for n in names)
    assert split_path("/".join(names)) == names and not text.startswith("/")
    assert _Location("r@v1/" + text).names == names
