"""Random sequences of file operations on a writable mount and on a local directory
must give the same results (values and errno) and the same tree after every step;
then the committed bundle must equal the directory, and `diff` must show exactly
what changed through the mount.

DATAMONFS_STATEFUL_EXAMPLES / DATAMONFS_STATEFUL_STEPS run more by hand, e.g.
    DATAMONFS_STATEFUL_EXAMPLES=2000 pytest tests/integration/test_writable_stateful.py -k local
"""

from __future__ import annotations

import ctypes
import errno
import os
import random
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from support.files import snapshot, tree_snapshot
from support.writable import Mounts

from datamonfs.core import ingest
from datamonfs.core.diff import diff_trees
from datamonfs.core.repository import BRANCH, Author, Repository
from datamonfs.core.stores import open_store

ADA = Author("Ada", "ada@example.org")
EXAMPLES = int(os.environ.get("DATAMONFS_STATEFUL_EXAMPLES", "25"))
STEPS = int(os.environ.get("DATAMONFS_STATEFUL_STEPS", "30"))
COPIES = 64  # example directories per base bundle (identical subtrees: stored once)

NAMES = ["a", "b", "c"]
PATHS = [x for x in NAMES] + [f"{x}/{y}" for x in NAMES for y in NAMES] + \
        [f"{x}/{y}/{z}" for x in NAMES for y in NAMES for z in NAMES[:2]]
TARGETS = ["a", "b", "a/a", "c/b", "nowhere"]  # never climbing out: a bundle refuses those
MODES = [0o644, 0o600, 0o755, 0o700, 0o444]
OWNERS = [0, 4321, 4400]
FALLOCATE_MODES = [0, 1, 1 | 2, 16, 16 | 1]  # allocate, KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE
XATTRS = ["user.a", "user.b"]
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


def _checked(ret: int) -> None:
    if ret:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


def make_base(root: str) -> None:
    """What each example starts from: base files (one of several chunks), a directory
    tree and a symlink, so the operations hit base entries as well as new ones."""
    rnd = random.Random(3)
    files = {"a/a": b"small a", "a/b": rnd.randbytes(1_500_000), "a/c/a": b"deep",
             "b": b"top file"}
    for rel, data in files.items():
        os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
        with open(os.path.join(root, rel), "wb") as f:
            f.write(data)
    os.chmod(os.path.join(root, "b"), 0o600)
    os.symlink("a/a", os.path.join(root, "c"))


class Pool:
    """A writable mount whose root holds COPIES copies of the base; each example takes
    the next copy, and a new branch (a fresh overlay) is mounted when they run out."""

    def __init__(self, tmp: str, store_url: str):
        self.tmp = tmp
        self.mounts = Mounts(tmp, store_url)
        self.repo = Repository(open_store(store_url))
        self.repo.create_repo("r", "", ADA)
        self.base_dir = os.path.join(tmp, "base")
        make_base(self.base_dir)
        src = os.path.join(tmp, "src")
        for i in range(COPIES):
            shutil.copytree(self.base_dir, os.path.join(src, f"ex{i}"), symlinks=True)
        self.bundle, _ = ingest.upload(self.repo, "r", src, "base", ADA)
        self.branches = 0
        self.harness = None
        self.used = COPIES

    def next_example(self) -> str:
        if self.used >= COPIES:
            if self.harness is not None:
                self.harness.stop()
            self.branches += 1
            branch = f"b{self.branches}"
            self.repo.append_ref("r", BRANCH, branch, self.bundle.id, ADA)
            self.harness = self.mounts.start("r", branch)
            self.used = 0
        self.used += 1
        return f"ex{self.used - 1}"


def _note(text: str) -> None:
    """Failures of runs hypothesis cannot replay (timing) are otherwise lost."""
    path = os.environ.get("DATAMONFS_STATEFUL_LOG")
    if path:
        with open(path, "a") as f:
            f.write(text + "\n")


def attempt(fn, *args):
    try:
        return ("ok", fn(*args))
    except OSError as e:
        return ("err", errno.errorcode.get(e.errno, e.errno))


class FileOps(RuleBasedStateMachine):
    pool: Pool = None

    def __init__(self):
        super().__init__()
        self.ex = self.pool.next_example()
        self.mnt = os.path.join(self.pool.harness.mountpoint, self.ex)
        self.ref = tempfile.mkdtemp(prefix="ref-", dir=self.pool.tmp)
        os.rmdir(self.ref)
        shutil.copytree(self.pool.base_dir, self.ref, symlinks=True)
        self.start = self._mount_view()
        self.history = [self.ex]
        self.kept: list = []  # open files: (mount, local) pairs, flattened

    def _mount_view(self) -> dict:
        """Files and links with their mtimes, as the mount shows them (for the diff check)."""
        out = {}
        for rel, desc in snapshot(self.mnt, mtimes=False).items():
            if desc[0] != "dir":
                out[rel] = (desc, os.lstat(os.path.join(self.mnt, rel)).st_mtime_ns)
        return out

    def both(self, fn, *paths):
        """Run fn on the mount and on the local directory; results and errors must match."""
        got = attempt(fn, *[os.path.join(self.mnt, p) for p in paths])
        want = attempt(fn, *[os.path.join(self.ref, p) for p in paths])
        self.history.append(f"{fn.__name__}{paths} -> {want[0]} {want[1] if want[0] == 'err' else ''}")
        if got != want:
            _note("\n  ".join(self.history) + f"\n  mount {got}, local {want}")
        assert got == want, f"{paths}: mount {got}, local {want}"

    @rule(path=st.sampled_from(PATHS), mode=st.sampled_from(["r+b", "wb", "ab", "xb"]),
          offset=st.one_of(st.integers(0, 4096), st.integers(0, 2_000_000)),
          size=st.one_of(st.integers(0, 100), st.integers(0, 300_000)), seed=st.integers(0, 9))
    def write(self, path, mode, offset, size, seed):
        data = random.Random(seed).randbytes(size)

        def write(p):
            with open(p, mode) as f:
                if mode != "ab":
                    f.seek(offset)
                return f.write(data)
        self.both(write, path)

    @rule(path=st.sampled_from(PATHS), size=st.one_of(st.integers(0, 10), st.integers(0, 2_000_000)))
    def truncate(self, path, size):
        self.both(lambda p: os.truncate(p, size), path)

    @rule(path=st.sampled_from(PATHS), offset=st.integers(0, 1_600_000), size=st.integers(0, 70_000))
    def pread(self, path, offset, size):
        def pread(p):
            fd = os.open(p, os.O_RDONLY)
            try:
                return os.pread(fd, size, offset)
            finally:
                os.close(fd)
        self.both(pread, path)

    @rule(path=st.sampled_from(PATHS))
    def unlink(self, path):
        self.both(os.unlink, path)

    @rule(path=st.sampled_from(PATHS))
    def mkdir(self, path):
        self.both(os.mkdir, path)

    @rule(path=st.sampled_from(PATHS))
    def rmdir(self, path):
        self.both(os.rmdir, path)

    @rule(src=st.sampled_from(PATHS), dst=st.sampled_from(PATHS))
    def rename(self, src, dst):
        self.both(os.rename, src, dst)

    @rule(path=st.sampled_from(PATHS), mode=st.sampled_from(MODES))
    def chmod(self, path, mode):
        self.both(lambda p: os.chmod(p, mode), path)

    @rule(path=st.sampled_from(PATHS), t=st.integers(0, 2**40))
    def utime(self, path, t):
        self.both(lambda p: os.utime(p, ns=(t, t * 1000 + 7)), path)

    @rule(path=st.sampled_from(PATHS), to=st.sampled_from(TARGETS))
    def symlink(self, path, to):
        self.both(lambda p: os.symlink(to, p), path)

    @rule(path=st.sampled_from(PATHS), seed=st.integers(0, 9))
    def unlinked_but_open(self, path, seed):
        """An open file that is unlinked stays readable and writable until closed."""
        data = random.Random(seed).randbytes(5000)

        def run(p):
            with open(p, "r+b") as f:
                os.unlink(p)
                f.seek(100)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
                f.seek(0)
                return f.read()
        self.both(run, path)

    @rule(path=st.sampled_from(PATHS), uid=st.sampled_from(OWNERS), gid=st.sampled_from(OWNERS))
    def chown(self, path, uid, gid):
        self.both(lambda p: os.chown(p, uid, gid, follow_symlinks=False), path)

    @rule(src=st.sampled_from(PATHS), dst=st.sampled_from(PATHS))
    def link(self, src, dst):
        self.both(lambda a, b: os.link(a, b, follow_symlinks=False), src, dst)

    @rule(src=st.sampled_from(PATHS), dst=st.sampled_from(PATHS))
    def exchange(self, src, dst):
        def exchange(a, b):  # renameat2(RENAME_EXCHANGE)
            _checked(_libc.renameat2(-100, a.encode(), -100, b.encode(), 2))
        self.both(exchange, src, dst)

    @rule(path=st.sampled_from(PATHS), mode=st.sampled_from(FALLOCATE_MODES),
          offset=st.integers(0, 1_600_000), length=st.integers(1, 300_000))
    def fallocate(self, path, mode, offset, length):
        def fallocate(p):
            fd = os.open(p, os.O_RDWR)
            try:
                _checked(_libc.fallocate(fd, mode, offset, length))
                return os.fstat(fd).st_size
            finally:
                os.close(fd)
        self.both(fallocate, path)

    @rule(path=st.sampled_from(PATHS), name=st.sampled_from(XATTRS),
          value=st.one_of(st.none(), st.binary(max_size=40)))
    def xattr(self, path, name, value):
        """Set one (or remove it: None), then list them all."""
        def xattr(p):
            if value is None:
                os.removexattr(p, name)
            else:
                os.setxattr(p, name, value)
            return sorted(os.listxattr(p))
        self.both(xattr, path)

    @rule(path=st.sampled_from(PATHS))
    def fsync(self, path):
        def fsync(p):
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self.both(fsync, path)

    @invariant()
    def same_tree(self):
        got, want = snapshot(self.mnt, mtimes=False), snapshot(self.ref, mtimes=False)
        if got != want:
            _note("\n  ".join(self.history) + f"\n  tree differs: mount {sorted(set(got.items()) - set(want.items()))}, "
                  f"local {sorted(set(want.items()) - set(got.items()))}")
        assert got == want
        assert self._links_and_owners(self.mnt) == self._links_and_owners(self.ref)

    @staticmethod
    def _links_and_owners(root: str) -> dict:
        """What bundles do not record but a mount shows: link counts, owners, and which
        names share an inode."""
        out, inodes = {}, {}
        for rel in sorted(snapshot(root, mtimes=False)):
            s = os.lstat(os.path.join(root, rel))
            out[rel] = (s.st_nlink, s.st_uid, s.st_gid, inodes.setdefault(s.st_ino, rel))
        return out

    @rule(path=st.sampled_from(PATHS))
    def keep_open(self, path):
        """A file held open on both sides across the next steps (and commits)."""
        def opener(p):
            return open(p, "r+b")
        got = attempt(opener, os.path.join(self.mnt, path))
        want = attempt(opener, os.path.join(self.ref, path))
        self.history.append(f"keep_open({path!r}) -> {want[0]}")
        for r in (got, want):
            if r[0] == "ok":
                self.kept.append(r[1])
        assert (got[0], got[1] if got[0] == "err" else None) == \
            (want[0], want[1] if want[0] == "err" else None)
        if got[0] == "ok" and len(self.kept) > 4:
            self._close_kept(0)

    @rule(offset=st.integers(0, 400_000), size=st.integers(0, 50_000), seed=st.integers(0, 9),
          which=st.integers(0, 1))
    def use_kept(self, offset, size, seed, which):
        if not self.kept:
            return
        data = random.Random(seed).randbytes(size)
        mine, theirs = self.kept[-2:]

        def use(f):
            if which:
                f.seek(offset)
                f.write(data)
                f.flush()
            f.seek(max(offset - 1000, 0))
            return f.read(size + 2000)
        got, want = attempt(use, mine), attempt(use, theirs)
        self.history.append(f"use_kept({offset}, {size}, write={which}) -> {want[0]}")
        assert got == want

    @rule()
    def close_kept(self):
        if self.kept:
            self._close_kept(len(self.kept) - 2)

    def _close_kept(self, i):
        mine, theirs = self.kept[i:i + 2]
        del self.kept[i:i + 2]
        self.history.append("close_kept")
        assert attempt(mine.close) == attempt(theirs.close)

    @rule()
    def commit(self):
        """Commit in the middle: the mount goes on from the new bundle, open files too."""
        self.history.append("commit")
        self._commit_and_check()

    def teardown(self):
        try:
            while self.kept:
                self._close_kept(0)
            self._commit_and_check()
        except BaseException as e:
            _note("\n  ".join(self.history) + f"\n  commit check: {type(e).__name__}: {e}")
            raise
        finally:
            shutil.rmtree(self.ref, ignore_errors=True)

    def _commit_and_check(self):
        end = self._mount_view()
        result = self.pool.harness.commit(f"example {self.ex}")
        repo = self.pool.repo
        if result["bundle"] is None:
            assert end == self.start
            return
        bundle = repo.get_bundle("r", result["bundle"])
        parent = repo.get_bundle("r", result["parent"])
        sub = repo.trees.lookup(bundle.tree, self.ex)
        assert tree_snapshot(repo, sub.tree) == snapshot(self.ref, mtimes=False)
        # the diff between parent and commit: exactly what changed through the mount
        changes = {c.path: c.change for c in diff_trees(repo, parent.tree, bundle.tree)}
        prefix = self.ex + "/"
        assert all(p.startswith(prefix) for p in changes), changes
        expected = {}
        for rel in set(self.start) | set(end):
            if rel not in end:
                expected[prefix + rel] = "deleted"
            elif rel not in self.start:
                expected[prefix + rel] = "added"
            elif self.start[rel] != end[rel]:
                expected[prefix + rel] = "modified"
        assert changes == expected
        # after the commit the mount shows the bundle, unchanged, with nothing staged
        assert self._mount_view() == end
        assert self.pool.harness.status() == []
        self.start = end


@pytest.fixture
def pool(tmp_path, store_url):
    p = Pool(str(tmp_path), store_url)
    try:
        yield p
    finally:
        p.mounts.cleanup()


def test_random_operations_match_a_local_directory(pool, store_url):
    FileOps.pool = pool
    examples = EXAMPLES if store_url.startswith("file://") else max(EXAMPLES // 3, 5)
    run_state_machine_as_test(FileOps, settings=settings(
        max_examples=examples, stateful_step_count=STEPS, deadline=None,
        suppress_health_check=list(HealthCheck)))
