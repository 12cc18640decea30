"""core.commit: a base tree plus a change description becomes a bundle, costing what changed."""

from __future__ import annotations

import io
import os
import random

import pytest
from support.files import snapshot, write
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from datamonfs.core import export, ingest
from datamonfs.core.chunks import MIN_CHUNK, cut
from datamonfs.core.commit import (CommitError, Keep, NewDir, NewFile, NewLink, commit,
                                   empty_dir, prepare)
from datamonfs.core.diff import diff_trees
from datamonfs.core.encoding import address
from datamonfs.core.repository import BRANCH, Author, Repository
from datamonfs.core.stores import open_store

ADA = Author("Ada", "ada@example.org")
MTIME = 1_700_000_000_000_000_000


def dir_of(repo, tree, changes, mode=0o755, mtime=MTIME, key=None):
    return NewDir(mode, mtime, tree, lambda: sorted(changes.items()), key)


def content(data: bytes):
    return lambda off, n: data[off:off + n]


def new_file(data: bytes, mode=0o644, base=None, changed=(), key=None):
    return NewFile(mode, MTIME, len(data), content(data), base, tuple(changed), key)


@pytest.fixture
def repo(store_url):
    r = Repository(open_store(store_url))
    r.create_repo("r", "", ADA)
    return r


def upload(repo, folder):
    bundle, _ = ingest.upload(repo, "r", str(folder), "base", ADA)
    return bundle


def test_changes_reuse_untouched_subtrees_and_diff_shows_exactly_them(repo, tmp_path):
    src = tmp_path / "src"
    write(src, "keep/deep/x.txt", b"x" * 100)
    write(src, "keep/y.txt", b"y")
    write(src, "edit/a.txt", b"old a")
    write(src, "edit/gone.txt", b"bye")
    write(src, "moved/m1.txt", b"m1")
    write(src, "moved/sub/m2.txt", b"m2")
    write(src, "meta.txt", b"same bytes")
    base = upload(repo, src)
    t = repo.trees
    edit = t.lookup(base.tree, "edit")
    moved = t.lookup(base.tree, "moved")
    meta = t.lookup(base.tree, "meta.txt")
    seen = {}
    root = dir_of(repo, base.tree, {
        "edit": dir_of(repo, edit.tree, {
            "a.txt": new_file(b"new a", base=t.lookup(edit.tree, "a.txt"), changed=[(0, 5)]),
            "gone.txt": None,
            "new.txt": new_file(b"brand new", key="new"),
            "link": NewLink("a.txt", 0o777, MTIME),
        }),
        "moved": None,
        "renamed": Keep(moved, key="renamed"),
        "meta.txt": NewFile(0o600, MTIME + 1, meta.size, content(b"same bytes"), meta),
    })
    result = commit(repo, "r", "main", base, root, "edits", ADA,
                    on_entry=lambda k, e: seen.setdefault(k, e))
    b = result.bundle
    assert b.parents == (base.id,) and not result.forked and result.head_before == base.id
    assert repo.ref_head("r", BRANCH, "main").bundle == b.id
    # untouched and renamed subtrees keep their addresses; the metadata-only change its chunks
    assert t.lookup(b.tree, "keep").tree == t.lookup(base.tree, "keep").tree
    assert t.lookup(b.tree, "renamed").tree == moved.tree
    assert seen["renamed"].tree == moved.tree and seen["new"].size == 9
    new_meta = t.lookup(b.tree, "meta.txt")
    assert new_meta.chunks == meta.chunks and new_meta.mode == 0o600
    assert (b.files, b.bytes) == (8, 100 + 1 + 5 + 9 + 2 + 2 + 10)  # links count as files, not bytes
    changes = [(c.path, c.change) for c in diff_trees(repo, base.tree, b.tree)]
    assert changes == [("edit/a.txt", "modified"), ("edit/gone.txt", "deleted"),
                       ("edit/link", "added"), ("edit/new.txt", "added"),
                       ("meta.txt", "modified"), ("moved/m1.txt", "deleted"),
                       ("moved/sub/m2.txt", "deleted"), ("renamed/m1.txt", "added"),
                       ("renamed/sub/m2.txt", "added")]
    out = tmp_path / "out"
    export.download(repo, b, str(out))
    got = snapshot(out)
    assert open(out / "edit" / "a.txt", "rb").read() == b"new a"
    assert got["edit/link"] == ("link", "a.txt")
    assert "moved" not in got and open(out / "renamed" / "sub" / "m2.txt", "rb").read() == b"m2"


def test_nothing_changed_commits_nothing(repo, tmp_path):
    write(tmp_path / "src", "a", b"a")
    base = upload(repo, tmp_path / "src")
    a = repo.trees.lookup(base.tree, "a")
    same = dir_of(repo, base.tree, {"a": NewFile(a.mode, a.mtime, 1, content(b"a"), a, ((0, 1),)),
                                    "b": None})
    result = commit(repo, "r", "main", base, same, "noop", ADA)
    assert result.bundle is None and not result.forked
    assert len(repo.bundle_ids("r")) == 1
    assert commit(repo, "r", "fresh", None, empty_dir(), "noop", ADA).bundle is None


def test_new_branch_from_an_empty_tree(repo):
    root = dir_of(repo, None, {"d": dir_of(repo, None, {"f": new_file(b"hi")})})
    result = commit(repo, "r", "scratch", None, root, "first", ADA, label="v0")
    assert result.bundle.parents == () and result.head_before is None
    assert repo.resolve("r:v0").id == result.bundle.id == repo.resolve("r:scratch").id


def test_partial_rechunk_reuses_the_old_chunks(repo, tmp_path):
    rng = random.Random(5)
    data = rng.randbytes(24 << 20)
    write(tmp_path / "src", "big.bin", data)
    base = upload(repo, tmp_path / "src")
    old = repo.trees.lookup(base.tree, "big.bin")
    old_chunks = repo.trees.chunks(old)
    new = bytearray(data)
    at = 11 << 20
    new[at:at + 4096] = rng.randbytes(4096)
    reads = []

    def read(off, n):
        reads.append(n)
        return bytes(new[off:off + n])

    f = NewFile(0o644, MTIME, len(new), read, old, ((at, at + 4096),))
    result = commit(repo, "r", "main", base, dir_of(repo, base.tree, {"big.bin": f}), "poke", ADA)
    got = [c.content for c in repo.trees.chunks(repo.trees.lookup(result.bundle.tree, "big.bin"))]
    want = [(address(c), len(c)) for c in cut(io.BytesIO(bytes(new)))]
    assert got == want  # what a fresh upload would have cut
    s = result.stats
    assert s.chunks_uploaded <= 2 and s.bytes_uploaded <= 2 * (4 << 20)
    assert s.bytes_rechunked <= sum(reads) <= s.bytes_rechunked + (4 << 20) < 3 * (4 << 20)
    assert s.chunks_reused >= len(old_chunks) - 2
    assert [(c.path, c.change) for c in diff_trees(repo, base.tree, result.bundle.tree)] == [
        ("big.bin", "modified")]


@pytest.fixture(scope="module")
def local_repo(tmp_path_factory):
    r = Repository(open_store(str(tmp_path_factory.mktemp("store"))))
    r.create_repo("r", "", ADA)
    return r


edits = st.lists(st.tuples(st.integers(0, 3 << 20), st.integers(1, 300_000)), max_size=3)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(0, 3 << 20), seed=st.integers(0, 100), edits=edits,
       new_size=st.one_of(st.none(), st.integers(0, 3 << 20)))
# The base is cut 17431 + 1: changing the last byte moves the cut before it (FastCDC's test
# at a cut includes the byte there), so re-cutting starts a chunk earlier.
@example(size=17432, seed=0, edits=[(17431, 1)], new_size=None)
@example(size=17432, seed=0, edits=[(17432, 1)], new_size=17428)
def test_any_edit_gives_the_chunks_of_a_fresh_upload(local_repo, tmp_path, size, seed, edits,
                                                      new_size):
    """In-place writes and truncation, as a writable mount stages them."""
    rng = random.Random(seed)
    data = rng.randbytes(size)
    root = NewDir(0o755, MTIME, None, lambda: [("f", new_file(data))])
    base = prepare(local_repo, "r", None, root, "base", ADA)[0]
    local_repo.write_bundle(base)
    entry = local_repo.trees.lookup(base.tree, "f")
    new = bytearray(data)
    changed = []
    if new_size is not None:  # truncate first, so later writes land past the old end
        new = new[:new_size] + bytes(max(0, new_size - len(new)))
        # as the overlay's base_limit: nothing from the cut on is the base's any more
        changed.append((new_size, max(len(data), new_size)))
    for at, n in edits:
        new += bytes(max(0, at - len(new)))  # a write past the end leaves a hole
        new[at:at + n] = rng.randbytes(n)
        changed.append((at, at + n))
    if new_size is not None and new_size < len(new):
        # Zeros where the base had bytes, once written past: the overlay says so too
        # (fs/overlay/changes.py, from its base_limit).
        changed.append((new_size, len(new)))
    new = bytes(new)
    f = NewFile(0o644, MTIME, len(new), content(new), entry, tuple(changed))
    bundle, stats = prepare(local_repo, "r", base, NewDir(0o755, MTIME, base.tree,
                                                          lambda: [("f", f)]), "edit", ADA)
    if new == data:
        assert bundle is None
        return
    got = [c.content for c in local_repo.trees.chunks(local_repo.trees.lookup(bundle.tree, "f"))]
    assert got == [(address(c), len(c)) for c in cut(io.BytesIO(new))]


def test_two_commits_from_one_parent_fork_the_branch(repo, tmp_path):
    write(tmp_path / "src", "a", b"a")
    base = upload(repo, tmp_path / "src")
    first = commit(repo, "r", "main", base, dir_of(repo, base.tree, {"b": new_file(b"1")}),
                   "one", ADA)
    second = commit(repo, "r", "main", base, dir_of(repo, base.tree, {"c": new_file(b"2")}),
                    "two", ADA)
    assert not first.forked and second.forked and second.head_before == first.bundle.id
    log = [r.bundle for r in repo.ref_log("r", BRANCH, "main")]
    assert log[:2] == [second.bundle.id, first.bundle.id]
    assert second.bundle.parents == first.bundle.parents == (base.id,)


def test_refuses_what_a_bundle_cannot_hold(repo, tmp_path):
    write(tmp_path / "src", "d/a", b"a")
    base = upload(repo, tmp_path / "src")
    for bad in (NewLink("../../etc/passwd", 0o777, MTIME), NewLink("/abs", 0o777, MTIME)):
        d = repo.trees.lookup(base.tree, "d")
        root = dir_of(repo, base.tree, {"d": dir_of(repo, d.tree, {"l": bad})})
        with pytest.raises(CommitError, match="outside the dataset"):
            commit(repo, "r", "main", base, root, "bad", ADA)
    with pytest.raises(CommitError, match="cannot be stored"):
        commit(repo, "r", "main", base, dir_of(repo, base.tree, {"bad\udcff": new_file(b"")}),
               "bad", ADA)
    unsorted = NewDir(0o755, MTIME, base.tree, lambda: [("z", None), ("a", None)])
    with pytest.raises(ValueError):
        commit(repo, "r", "main", base, unsorted, "bad", ADA)
    assert len(repo.bundle_ids("r")) == 1


def test_big_directory_pages_and_chunk_lists(repo, tmp_path, monkeypatch):
    from datamonfs.core import trees

    monkeypatch.setattr(trees, "PAGE_SIZE", 8)
    src = tmp_path / "src"
    for i in range(30):
        write(src, f"many/f{i:02}", b"%d" % i)
    base = upload(repo, src)
    many = repo.trees.lookup(base.tree, "many")
    big = os.urandom(20 * MIN_CHUNK)  # more chunks than fit inline: a chunk-list object
    changes = {f"f{i:02}": None for i in range(0, 30, 3)}
    changes["big"] = new_file(big)
    root = dir_of(repo, base.tree, {"many": dir_of(repo, many.tree, changes)})
    b = commit(repo, "r", "main", base, root, "m", ADA).bundle
    new_many = repo.trees.lookup(b.tree, "many")
    assert repo.trees.count(new_many.tree) == 21 and new_many.files == 21
    assert [e.name for e in repo.trees.entries(new_many.tree)][:3] == ["big", "f01", "f02"]
    out = tmp_path / "out"
    export.download(repo, b, str(out))
    with open(out / "many" / "big", "rb") as f:
        assert f.read() == big
