"""Property test: hostile store content never escapes DEST, crashes a command, or serves
wrong bytes.

Hypothesis builds a bundle as a small model (`Dir`, `File`, `Link` nodes) -- mostly well formed,
with zero to two faults injected -- and writes it *verbatim* as raw objects into a local store,
bypassing every check of the writer. Then:

1. `datamonfs bundle download` runs in-process (click's CliRunner) three times: without a filter,
   with --filter='*' and with a random glob, each into a fresh DEST inside a sandbox that
   also holds a "victim" directory (a file and a symlink);
2. every file path of the model is looked up name by name and read through ReadOnlyFS, without a
   kernel, once straight from the store and once through the block cache the downloads filled.

The oracle (`Oracle`) is written from the rules the implementation must enforce, not from its code:

  names    a str, non-empty, not "." or "..", no "/" or NUL, strict UTF-8, at most 255 bytes
  order    strictly increasing (str order) in a directory, across its pages too; an index entry
           [first name, page, count] matches its page exactly
  links    target non-empty, no NUL, strict UTF-8, at most 4095 bytes, not absolute; ignoring
           "" and "." components every ".." comes before any other component, and there are at
           most as many as the depth of the directory holding the link (the root's depth is 0)
  numbers  mode 0..0o7777, mtime a signed 64-bit nanosecond count, sizes >= 0
  files    size == sum of the listed chunk sizes; each listed size is 1..64 MiB and equals the
           real length of the chunk's bytes
  totals   a directory entry's bytes and files equal what its children list (a symlink is one
           file of 0 bytes); the root's equal the bundle record's
  depth    at most 256 components in a path

Most violations are *structural*: the tree objects alone show them. Two kinds are *deferred*:
only reading more than the trees shows them -- a chunk whose listed size is in range but is not
its real length (reading the chunk shows it), and a bad chunk list kept in a "chunks" object of
its own (reading that object shows it). Expected outcomes:

  - a download exits 0 or 4, never 1 nor with an uncaught exception; on 4 stderr is exactly one
    line "datamonfs: error: ..."; nothing outside DEST changes.
  - exit 4 for any structural violation, and for a deferred one in a file the download writes;
    a deferred one in a file its glob leaves out may go unseen (0 or 4); otherwise exit 0.
    On 0, DEST holds exactly the selected part of the bundle: file bytes, file modes
    & ~0o6000, link targets, directories.
  - after exit 4, whatever DEST holds is made of the bundle's well-formed entries, files with
    their exact bytes (no temp files, no setuid bits, no refused link).
  - ReadOnlyFS fails only with FUSEError, and only returns true bytes; a read touching a chunk
    whose listed size lies fails with EIO. In a bundle without structural violation every
    lookup succeeds, and so does every open and read of a file without deferred violation.
"""

from __future__ import annotations

import errno
import fnmatch
import itertools
import json
import os
import shutil
import stat
import tempfile
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace

import pyfuse3
import pytest
import trio
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from datamonfs.cache import CachedChunkReader, FileReader, open_cache
from datamonfs.cli.main import cli
from datamonfs.core.encoding import address, encode
from datamonfs.core.model import Bundle, RefRecord
from datamonfs.core.repository import Author, Repository
from datamonfs.core.stores import open_store
from datamonfs.fs.readonly import MountInfo, ReadOnlyFS


# Hostile entries fail their requests, and the file system logs each failure.
pytestmark = pytest.mark.expect_log("failed")


@contextmanager
def make_fs(repo: Repository, bundle: Bundle, blocks=None):
    """The read-only file system of `bundle` (the one place that knows its constructor).
    Must be entered inside trio.run."""
    reader = CachedChunkReader(blocks, repo.chunks)
    try:
        yield ReadOnlyFS(repo, reader, bundle, MountInfo("r:bad", os.getuid(), os.getgid()),
                         FileReader)
    finally:
        reader.close()


EXAMPLES = int(os.environ.get("DATAMONFS_HOSTILE_EXAMPLES", "200"))
MAX_NAME = 255
MAX_TARGET = 4095
MAX_COMPONENTS = 256
MAX_CHUNK = 64 << 20
INT64 = range(-2**63, 2**63)
EVE = Author("Eve", "eve@example.org")
REF = "r:bad"
FS_PROBES = 24  # file paths looked up through ReadOnlyFS per bundle (a tree bomb has millions)


# -- the model: a bundle as plain objects, written verbatim ---------------------------------------


class _Pretty:
    def _repr_pretty_(self, p, cycle):  # hypothesis prints dataclasses field by field: a DAG
        p.text(repr(self))              # would print exponentially


@dataclass(eq=False, repr=False)
class File(_Pretty):
    chunks: list[bytes]  # the real bytes of each chunk
    mode: int = 0o644
    mtime: int = 0
    listed: list[int] | None = None  # listed chunk sizes; None: the real ones
    size: int | None = None  # listed file size; None: the sum of the listed chunk sizes
    in_object: bool = False  # chunk list in a "chunks" object instead of inline

    def listed_sizes(self) -> list[int]:
        return self.listed if self.listed is not None else [len(c) for c in self.chunks]

    def listed_size(self) -> int:
        return self.size if self.size is not None else sum(self.listed_sizes())

    @property
    def content(self) -> bytes:
        return b"".join(self.chunks)

    def lies(self) -> bool:
        return self.listed_sizes() != [len(c) for c in self.chunks]

    def expected_read(self, off: int, n: int) -> bytes | None:
        """What reading [off, off+n) may return, chunks placed at their listed offsets;
        None when the range touches a chunk whose listed size is not its real length."""
        end, out, start = min(off + n, sum(self.listed_sizes())), [], 0
        for data, size in zip(self.chunks, self.listed_sizes()):
            if start < end and off < start + size:
                if size != len(data):
                    return None
                out.append(data[max(off - start, 0):end - start])
            start += size
        return b"".join(out)

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in (("listed", self.listed), ("size", self.size))
                        if v is not None)
        extra += f", mode={oct(self.mode)}" if self.mode != 0o644 else ""
        extra += f", mtime={self.mtime}" if self.mtime else ""
        extra += ", in_object=True" if self.in_object else ""
        return f"File({self.chunks!r}{extra})"


@dataclass(eq=False, repr=False)
class Link(_Pretty):
    target: str
    mode: int = 0o777
    mtime: int = 0

    def __repr__(self) -> str:
        extra = f", mode={oct(self.mode)}" if self.mode != 0o777 else ""
        extra += f", mtime={self.mtime}" if self.mtime else ""
        return f"Link({self.target!r}{extra})"


@dataclass(eq=False, repr=False)
class Dir(_Pretty):
    entries: list[tuple[str, "File | Link | Dir"]]  # in stored order, duplicates allowed
    mode: int = 0o755
    mtime: int = 0
    pages: list[int] | None = None  # entries per page; None: one leaf object
    page_lies: dict[int, tuple] = field(default_factory=dict)  # page -> (first, count) listed
    bytes: int | None = None  # listed totals; None: what the children list
    files: int | None = None

    def __repr__(self) -> str:
        return describe(self, {})


Node = File | Link | Dir


def describe(d: Dir, shared: dict) -> str:
    """A Dir's repr, each directory object printed once (a tree bomb stays short)."""
    if id(d) in shared:
        return f"<same as #{shared[id(d)]}>"
    shared[id(d)] = len(shared) + 1
    items = ", ".join(f"({n!r}, {describe(c, shared) if isinstance(c, Dir) else repr(c)})"
                      for n, c in d.entries)
    extra = "".join(f", {k}={v!r}" for k, v in (
        ("pages", d.pages), ("page_lies", d.page_lies or None), ("bytes", d.bytes),
        ("files", d.files)) if v is not None)
    extra += f", mode={oct(d.mode)}" if d.mode != 0o755 else ""
    extra += f", mtime={d.mtime}" if d.mtime else ""
    return f"#{shared[id(d)]}=Dir([{items}]{extra})"


@dataclass(eq=False)
class Model(_Pretty):
    root: Dir
    files: int | None = None  # the bundle record's totals; None: what the root lists
    bytes: int | None = None


@dataclass(eq=False)
class Case(_Pretty):
    model: Model
    glob: str  # the random --filter


def F(data: bytes, *cuts: int, **kw) -> File:
    """A file of `data`, cut into chunks at `cuts`."""
    bounds = [0, *cuts, len(data)]
    return File([data[a:b] for a, b in zip(bounds, bounds[1:]) if b > a], **kw)


def D(**entries: Node) -> Dir:
    return Dir(sorted(entries.items()))


class Totals:
    """Listed (files, bytes) of nodes, and what a directory's children add up to."""

    def __init__(self):
        self._memo: dict[Dir, tuple[int, int]] = {}

    def listed(self, node: Node) -> tuple[int, int]:
        if isinstance(node, File):
            return 1, node.listed_size()
        if isinstance(node, Link):
            return 1, 0
        files, nbytes = self.children(node)
        return (node.files if node.files is not None else files,
                node.bytes if node.bytes is not None else nbytes)

    def children(self, d: Dir) -> tuple[int, int]:
        if d not in self._memo:
            sums = [self.listed(node) for _, node in d.entries]
            self._memo[d] = (sum(f for f, _ in sums), sum(b for _, b in sums))
        return self._memo[d]

    def bundle(self, model: Model) -> tuple[int, int]:
        files, nbytes = self.children(model.root)
        return (model.files if model.files is not None else files,
                model.bytes if model.bytes is not None else nbytes)


# -- writing the model as raw store objects -------------------------------------------------------


def dump(obj: dict) -> bytes:
    """Canonical JSON; with a lone surrogate, its escaped form (encode() cannot write it)."""
    try:
        return encode(obj)
    except UnicodeEncodeError:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


class Writer:
    def __init__(self, store, totals: Totals):
        self.store, self.totals, self._trees = store, totals, {}

    def meta(self, obj: dict) -> str:
        data = dump(obj)
        addr = address(data)
        self.store.put(f"meta/{addr[:2]}/{addr}", data)
        return addr

    def chunk(self, data: bytes) -> str:
        addr = address(data)
        self.store.put(f"chunk/{addr[:2]}/{addr}", data)
        return addr

    def tree(self, d: Dir) -> str:
        if d not in self._trees:
            rows = [self.row(name, node) for name, node in d.entries]
            if d.pages is None:
                self._trees[d] = self.meta({"v": 1, "type": "tree", "entries": rows})
            else:
                assert sum(d.pages) == len(rows), "test bug: pages do not cover the entries"
                index, at = [], 0
                for i, count in enumerate(d.pages):
                    page = rows[at:at + count]
                    at += count
                    first, listed = d.page_lies.get(i, (None, None))
                    if first is None:  # an empty page is indexed under the next name
                        first = page[0][0] if page else rows[at][0] if at < len(rows) else "~"
                    index.append([first, self.meta({"v": 1, "type": "tree", "entries": page}),
                                  count if listed is None else listed])
                self._trees[d] = self.meta({"v": 1, "type": "tree", "pages": index})
        return self._trees[d]

    def row(self, name: str, node: Node) -> list:
        if isinstance(node, File):
            body = [[self.chunk(c), s] for c, s in zip(node.chunks, node.listed_sizes())]
            if node.in_object:
                body = self.meta({"v": 1, "type": "chunks", "chunks": body})
            return [name, "file", node.mode, node.mtime, node.listed_size(), body]
        if isinstance(node, Link):
            size = len(node.target.encode("utf-8", "surrogatepass"))
            return [name, "link", node.mode, node.mtime, size, node.target]
        files, nbytes = self.totals.listed(node)
        return [name, "dir", node.mode, node.mtime, nbytes, [self.tree(node), files]]


def plant(url: str, model: Model) -> tuple[Repository, Bundle]:
    """Write the model into a fresh store as repo "r", labelled "bad"."""
    repo = Repository(open_store(url))
    repo.create_repo("r", "hostile", EVE)
    totals = Totals()
    tree = Writer(repo.store, totals).tree(model.root)
    files, nbytes = totals.bundle(model)
    record = Bundle("r", tree, (), "hostile", EVE.name, EVE.email, 1, files, nbytes)
    bundle = repo.write_bundle(record)
    now = time.time_ns()  # the ref record by hand: append_ref would refuse negative totals
    ref = RefRecord("r", "label", "bad", bundle.id, now, EVE.name, EVE.email)
    repo.store.put(f"ref/r/label/bad/{now:020d}-{os.urandom(8).hex()}", encode(ref.to_obj()))
    return repo, bundle


# -- the oracle -----------------------------------------------------------------------------------


def utf8(text: str) -> bytes | None:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return None


def name_problem(name: object) -> str | None:
    if not isinstance(name, str) or name in ("", ".", ".."):
        return f"bad name {name!r}"
    if "/" in name or "\0" in name:
        return f"name {name!r} holds / or NUL"
    raw = utf8(name)
    if raw is None or len(raw) > MAX_NAME:
        return f"name {name!r:.40} is not UTF-8 or longer than {MAX_NAME} bytes"
    return None


def link_problem(target: object, depth: int) -> str | None:
    """The local rule that keeps links (also through other links) inside the bundle."""
    if not isinstance(target, str) or not target or "\0" in target:
        return f"empty or NUL target {target!r}"
    raw = utf8(target)
    if raw is None or len(raw) > MAX_TARGET or target.startswith("/"):
        return f"target {target!r:.40} not UTF-8, too long or absolute"
    ups, named = 0, False
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part != "..":
            named = True
        elif named:
            return f"target {target!r} has '..' after a name"
        else:
            ups += 1
    if ups > depth:
        return f"target {target!r} climbs {ups} levels from depth {depth}"
    return None


def entry_problem(node: Node, depth: int, totals: Totals) -> str | None:
    """What is wrong with one entry on its own (not below it); depth: its directory's."""
    if not isinstance(node.mode, int) or not 0 <= node.mode <= 0o7777:
        return f"mode {node.mode!r} out of range"
    if node.mtime not in INT64:
        return f"mtime {node.mtime} out of range"
    if isinstance(node, Link):
        return link_problem(node.target, depth)
    if isinstance(node, Dir):
        listed, below = totals.listed(node), totals.children(node)
        return None if listed == below else f"directory totals {listed} but {below} below"
    if node.listed_size() < 0:
        return f"negative size {node.listed_size()}"
    return None if node.in_object else chunk_list_problem(node)


def chunk_list_problem(f: File) -> str | None:
    sizes = f.listed_sizes()
    if any(not 1 <= s <= MAX_CHUNK for s in sizes):
        return f"chunk sizes {sizes} out of range"
    if f.listed_size() != sum(sizes):
        return f"file size {f.listed_size()} is not the sum of {sizes}"
    return None


def deferred_problem(f: File) -> str | None:
    """What only reading more than the trees shows: a chunk-list object's sizes, or a
    chunk's real length."""
    if f.in_object and (problem := chunk_list_problem(f)):
        return problem
    return "a listed chunk size is not the chunk's length" if f.lies() else None


def page_problem(d: Dir) -> str | None:
    if d.pages is None:
        return None
    at = 0
    for i, count in enumerate(d.pages):
        names = [n for n, _ in d.entries[at:at + count]]
        at += count
        first, listed = d.page_lies.get(i, (None, None))
        if not names or (first is not None and first != names[0]) or (
                listed is not None and listed != count):
            return f"page {i} does not match its index entry"
    return None


class Oracle:
    def __init__(self, model: Model):
        self.model = model
        self.totals = Totals()
        self._seen: set[tuple[int, int]] = set()
        self.problem = self._bundle_problem()  # the first structural violation, or None

    def _bundle_problem(self) -> str | None:
        listed, below = self.totals.bundle(self.model), self.totals.children(self.model.root)
        if listed != below:
            return f"bundle totals {listed} but {below} below the root"
        return self._dir_problem(self.model.root, ())

    def _dir_problem(self, d: Dir, path: tuple) -> str | None:
        depth = len(path)
        if (id(d), depth) in self._seen:  # a DAG: each (object, depth) once
            return None
        self._seen.add((id(d), depth))
        where = f"{'/'.join(path)[:60]!r}{'...' if len(path) > 4 else ''}" if path else "root"
        if d.entries and depth + 1 > MAX_COMPONENTS:
            return f"{where}: a path of more than {MAX_COMPONENTS} components"
        names = [n for n, _ in d.entries]
        problem = next(filter(None, map(name_problem, names)), None) or page_problem(d)
        if problem or any(not a < b for a, b in zip(names, names[1:])):
            return f"{where}: {problem or 'names unsorted or repeated'}"
        for name, node in d.entries:
            problem = entry_problem(node, depth, self.totals)
            if problem:
                return f"{where}: {name!r}: {problem}"
            if isinstance(node, Dir) and (problem := self._dir_problem(node, path + (name,))):
                return problem
        return None

    def paths(self, d: Dir | None = None, prefix: tuple = ()):
        """(components, node) of every entry, depth first, lazily (a DAG may be huge)."""
        for name, node in (d or self.model.root).entries:
            yield prefix + (name,), node
            if isinstance(node, Dir):
                yield from self.paths(node, prefix + (name,))

    def file_paths(self, limit: int) -> list[tuple]:
        files = (comps for comps, node in self.paths() if isinstance(node, File))
        return list(itertools.islice(files, limit))

    def files_at(self, comps: tuple) -> list[File]:
        """Every file the path may name (duplicate names give several)."""
        nodes: list[Node] = [self.model.root]
        for name in comps:
            nodes = [c for d in nodes if isinstance(d, Dir) for n, c in d.entries if n == name]
        return [f for f in nodes if isinstance(f, File)]

    def expected(self) -> dict[str, tuple]:
        """The whole bundle as `listing` shows a download (only for a bundle with no problem)."""
        out = {}
        for comps, node in self.paths():
            path = "/".join(comps)
            if isinstance(node, File):
                out[path] = ("file", node.content, node.mode & ~0o6000)
            elif isinstance(node, Link):
                out[path] = ("link", node.target)
            else:
                out[path] = ("dir",)
        return out

    def codes(self, glob: str | None) -> set[int]:
        """The exit codes a download with this --filter may give."""
        if self.problem:
            return {4}
        faults = {"/".join(c) for c, node in self.paths()
                  if isinstance(node, File) and deferred_problem(node)}
        if any(glob is None or glob_matches(glob, p) for p in faults):
            return {4}
        return {0, 4} if faults else {0}

    def may_appear(self, node: Node, depth: int) -> bool:
        """May a download that fails leave this entry behind? Only a well-formed one."""
        if isinstance(node, Dir):
            return True
        return entry_problem(node, depth, self.totals) is None and not (
            isinstance(node, File) and deferred_problem(node))


# -- looking at the disk --------------------------------------------------------------------------


def listing(dest: str) -> dict[str, tuple]:
    """Everything below dest: ("dir",), ("file", bytes, mode) or ("link", target)."""
    out: dict[str, tuple] = {}

    def walk(directory: str, prefix: str) -> None:
        for name in sorted(os.listdir(directory)):
            full, path = os.path.join(directory, name), prefix + name
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[path] = ("link", os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                out[path] = ("dir",)
                walk(full, path + "/")
            elif stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    out[path] = ("file", f.read(), stat.S_IMODE(st.st_mode))
            else:
                out[path] = ("special", st.st_mode)

    if os.path.isdir(dest):
        walk(dest, "")
    return out


def make_sandbox(root: str) -> str:
    """ROOT/outer/sandbox/victim/{secret, link -> secret}; DESTs go beside victim."""
    victim = os.path.join(root, "outer", "sandbox", "victim")
    os.makedirs(victim)
    with open(os.path.join(victim, "secret"), "wb") as f:
        f.write(b"the victim's secret\n")
    os.chmod(os.path.join(victim, "secret"), 0o600)
    os.symlink("secret", os.path.join(victim, "link"))
    return os.path.dirname(victim)


def snapshot(sandbox: str, dest: str) -> dict:
    """Everything in and beside the sandbox except dest, down to inodes, times and bytes."""
    outer = os.path.dirname(sandbox)
    others = set(os.listdir(sandbox)) - {os.path.basename(dest)}
    state: dict = {"<names beside the sandbox>": sorted(os.listdir(outer)),
                   "<names in the sandbox>": sorted(others)}
    for directory, dirnames, filenames in os.walk(sandbox):
        dirnames[:] = [n for n in dirnames if os.path.join(directory, n) != dest]
        for name in dirnames + filenames:
            full = os.path.join(directory, name)
            if full == dest:
                continue
            st = os.lstat(full)
            record = (st.st_mode, st.st_ino, st.st_nlink, st.st_uid, st.st_gid, st.st_size,
                      st.st_mtime_ns)
            if stat.S_ISLNK(st.st_mode):
                record += (os.readlink(full),)
            elif stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    record += (f.read(),)
            state[os.path.relpath(full, sandbox)] = record
    return state


def diff(got: dict, want: dict) -> str:
    lines = [f"  unexpected {k!r}: {got[k]!r:.120}" for k in got.keys() - want.keys()]
    lines += [f"  missing {k!r}: {want[k]!r:.120}" for k in want.keys() - got.keys()]
    lines += [f"  {k!r}: got {got[k]!r:.120}, want {want[k]!r:.120}"
              for k in got.keys() & want.keys() if got[k] != want[k]]
    return "\n".join(sorted(lines)[:20])


def check_complete(dest: str, oracle: Oracle, glob: str | None) -> None:
    """After exit 0: exactly the selected part of the bundle."""
    got, want = listing(dest), oracle.expected()
    if glob is None:
        assert got == want, f"download differs from the bundle:\n{diff(got, want)}"
        return
    items = {p: v for p, v in want.items() if v[0] != "dir" and glob_matches(glob, p)}
    got_items = {p: v for p, v in got.items() if v[0] != "dir"}
    assert got_items == items, f"download --filter={glob!r} differs:\n{diff(got_items, items)}"
    dirs = {p for p, v in got.items() if v[0] == "dir"}
    needed = {p.rsplit("/", i)[0] for p in items for i in range(1, p.count("/") + 1)}
    assert needed <= dirs, f"missing directories {sorted(needed - dirs)[:5]}"
    stray = dirs - {p for p, v in want.items() if v[0] == "dir"}
    assert not stray, f"stray directories {sorted(stray)[:5]}"


def check_partial(dest: str, oracle: Oracle) -> None:
    """After exit 4: DEST holds only well-formed entries of the bundle, files with true bytes."""

    def walk(directory: str, parents: list[Dir], depth: int, prefix: str) -> None:
        for name in os.listdir(directory):
            full, path = os.path.join(directory, name), prefix + name
            st = os.lstat(full)
            found = [c for d in parents for n, c in d.entries
                     if n == name and name_problem(n) is None and oracle.may_appear(c, depth)]
            if stat.S_ISDIR(st.st_mode):
                dirs = [c for c in found if isinstance(c, Dir)]
                assert dirs, f"refused download left directory {path!r}, not in the bundle"
                walk(full, dirs, depth + 1, path + "/")
            elif stat.S_ISLNK(st.st_mode):
                target = os.readlink(full)
                assert any(isinstance(c, Link) and c.target == target for c in found), (
                    f"refused download left symlink {path!r} -> {target!r}, not a well-formed "
                    f"link of the bundle")
            elif stat.S_ISREG(st.st_mode):
                assert not st.st_mode & 0o6000, f"{path!r} kept a setuid/setgid bit"
                with open(full, "rb") as f:
                    data = f.read()
                assert any(isinstance(c, File) and c.content == data for c in found), (
                    f"refused download left file {path!r} ({data[:40]!r}) that is no "
                    f"well-formed file of the bundle (temp file or wrong bytes)")
            else:
                pytest.fail(f"refused download left special file {path!r}")

    if os.path.isdir(dest):
        walk(dest, [oracle.model.root], 0, "")


# -- running the CLI and the file system ----------------------------------------------------------


@dataclass
class World:
    """What the examples of this module share: XDG dirs, the block cache, a scratch dir."""
    env: dict
    cache_dir: str
    scratch: str

    def blocks(self):
        return open_cache(SimpleNamespace(cache_dir=self.cache_dir, cache_size=None))[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    home = str(tmp_path_factory.mktemp("hostile-home"))
    env = {"DATAMONFS_CONFIG": None, "DATAMONFS_SOCKET": None, "DATAMONFS_STORE_TIMEOUT": "10",
           "DATAMONFS_CACHE_DIR": os.path.join(home, "cache")}
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME",
                "XDG_RUNTIME_DIR"):
        env[var] = os.path.join(home, var.lower())
        os.makedirs(env[var], mode=0o700)
    os.makedirs(os.path.join(home, "scratch"))
    return World(env, env["DATAMONFS_CACHE_DIR"], os.path.join(home, "scratch"))


def download(world: World, url: str, dest: str, glob: str | None):
    # click >= 8.2 (8.5 here) has no mix_stderr: result.stderr is always kept apart
    args = ["bundle", "download", REF, dest] + ([] if glob is None else [f"--filter={glob}"])
    return CliRunner().invoke(cli, args, env={**world.env, "DATAMONFS_STORE": url})


def check_download(world: World, url: str, dest: str, glob: str | None, oracle: Oracle) -> int:
    sandbox = os.path.dirname(dest)
    before = snapshot(sandbox, dest)
    result = download(world, url, dest, glob)
    after = snapshot(sandbox, dest)
    what = f"download --filter={glob!r}" if glob is not None else "download"
    assert after == before, f"{what} changed things outside DEST:\n{diff(after, before)}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        tb = "".join(traceback.format_exception(result.exception))
        pytest.fail(f"{what} raised {result.exception!r} (exit {result.exit_code}):\n{tb}")
    code, err = result.exit_code, result.stderr
    assert code in (0, 4), f"{what} exited {code}: {err!r}"
    if code == 4:
        one_line = err.count("\n") == 1 and err.endswith("\n")
        assert err.startswith("datamonfs: error: ") and one_line, (
            f"{what}: exit 4 must print exactly one error line, printed {err!r}")
    want = oracle.codes(glob)
    assert code in want, (f"{what} exited {code}, expected {sorted(want)}; stderr {err!r}; "
                          f"violation: {oracle.problem}")
    if code == 0:
        check_complete(dest, oracle, glob)
    else:
        check_partial(dest, oracle)
    return code


ALLOWED_ERRNOS = {errno.EIO, errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ELOOP,
                  errno.EINVAL, errno.ENAMETOOLONG, errno.EILSEQ}


def name_bytes(name: str) -> bytes:
    try:
        return name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogatepass")


async def probe(fs, comps: tuple, oracle: Oracle, label: str) -> list:
    """Look a file up from the root, open it and read it; [errno or "ok", ...] per step."""
    files = oracle.files_at(comps)
    strict = oracle.problem is None  # then exactly one file, which fails only if it lies
    lying = any(deferred_problem(f) for f in files)
    where = f"{'/'.join(comps)!r:.80} (reading from the {label})"

    def refused(e: pyfuse3.FUSEError, what: str, may_fail: bool) -> int:
        allowed = ALLOWED_ERRNOS if not strict else {errno.EIO} if may_fail else set()
        assert e.errno in allowed, (f"ReadOnlyFS {what} of {where} failed with "
                                    f"{errno.errorcode.get(e.errno, e.errno)}; "
                                    f"violation: {oracle.problem}")
        return e.errno

    ino, attr = pyfuse3.ROOT_INODE, None
    for name in comps:
        try:
            attr = await fs.lookup(ino, name_bytes(name), None)
        except pyfuse3.FUSEError as e:
            return [refused(e, "lookup", False)]
        ino = attr.st_ino
    try:
        fh = (await fs.open(ino, os.O_RDONLY, None)).fh
    except pyfuse3.FUSEError as e:
        return [refused(e, "open", lying)]
    size = min(max(attr.st_size, 0), 1 << 20)
    outcomes = []
    try:
        for off, n in ((0, size + 1), (size // 3, size // 2 + 1), (0, 1)):
            expected = [x for f in files if (x := f.expected_read(off, n)) is not None]
            try:
                data = bytes(await fs.read(fh, off, n))
            except pyfuse3.FUSEError as e:
                outcomes.append(refused(e, f"read({off}, {n})", lying or not expected))
                continue
            assert expected, (f"ReadOnlyFS read({off}, {n}) of {where} returned {data[:40]!r} "
                              f"although the chunk list lies: it must fail with EIO")
            assert data in expected, (f"ReadOnlyFS read({off}, {n}) of {where} returned "
                                      f"{data[:40]!r}, not the true bytes {expected[0][:40]!r}")
            outcomes.append("ok")
    finally:
        await fs.release(fh)
    return outcomes


def check_fs(world: World, repo: Repository, bundle: Bundle, oracle: Oracle) -> dict:
    """Every probed file through ReadOnlyFS, straight from the store and through the cache."""
    probes = oracle.file_paths(FS_PROBES)

    async def run() -> dict:
        outcomes = {}
        for label, blocks in (("store", None), ("cache", world.blocks())):
            with make_fs(repo, bundle, blocks) as fs:
                for comps in probes:
                    outcomes["/".join(comps), label] = await probe(fs, comps, oracle, label)
        return outcomes

    return trio.run(run)


@dataclass
class Report:
    codes: list[int]  # exit codes: no filter, '*', the case's glob
    reads: dict  # (path, "store" | "cache") -> probe outcomes
    problem: str | None


def check_case(world: World, case: Case) -> Report:
    root = tempfile.mkdtemp(prefix="case-", dir=world.scratch)
    try:
        url = "file://" + os.path.join(root, "store")
        repo, bundle = plant(url, case.model)
        oracle = Oracle(case.model)
        sandbox = make_sandbox(root)
        codes = [check_download(world, url, os.path.join(sandbox, f"dest{i}"), glob, oracle)
                 for i, glob in enumerate((None, "*", case.glob))]
        return Report(codes, check_fs(world, repo, bundle, oracle), oracle.problem)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- strategies: a well-formed tree, then zero to two faults --------------------------------------

NAME_CHARS = "ab.-_ \né日\U0001F600"
LONG_NAMES = ["n" * MAX_NAME, "日" * (MAX_NAME // 3)]  # 255 bytes: still valid
names = st.text(NAME_CHARS, min_size=1, max_size=4).filter(lambda s: s not in (".", ".."))
mtimes = st.one_of(st.integers(-10**18, 2 * 10**18),
                   st.sampled_from([0, INT64.start, INT64.stop - 1]))


@st.composite
def entry_name(draw) -> str:
    return LONG_NAMES[draw(st.integers(0, 1))] if draw(st.integers(0, 19)) == 19 else draw(names)


@st.composite
def files(draw) -> File:
    data = draw(st.binary(max_size=24))
    cuts = sorted(draw(st.sets(st.integers(1, max(len(data) - 1, 1)), max_size=2)))
    return F(data, *[c for c in cuts if c < len(data)],
             mode=draw(st.sampled_from([0o644, 0o600, 0o755, 0o444, 0o000, 0o1644, 0o777])),
             mtime=draw(mtimes), in_object=draw(st.integers(0, 4)) == 4)


@st.composite
def link_targets(draw, depth: int, siblings: list[str]) -> str:
    """A target the rule allows: up to `depth` '..', then names, with '.' and '' sprinkled in."""
    parts = [".."] * draw(st.integers(0, depth))
    parts += draw(st.lists(st.sampled_from(siblings) if siblings else names, max_size=2))
    for at, noise in draw(st.lists(st.tuples(st.integers(0, 4), st.sampled_from([".", ""])),
                                   max_size=2)):
        if noise or at:  # a leading "" would make it absolute
            parts.insert(min(at, len(parts)), noise)
    return "/".join(parts) or "."


@st.composite
def page_split(draw, n: int) -> list[int]:
    cuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=min(3, n - 1))))  # 1+ pages
    return [b - a for a, b in zip([0, *cuts], [*cuts, n])]


@st.composite
def dirs(draw, depth: int = 0) -> Dir:
    entry_names = sorted(draw(st.lists(entry_name(), max_size=4 - depth, unique=True)))
    entries = []
    for name in entry_names:
        kinds = ["file", "file", "link", "dir"] if depth < 2 else ["file", "link"]
        kind = draw(st.sampled_from(kinds))
        if kind == "dir":
            node = draw(dirs(depth + 1))
        elif kind == "link":
            node = Link(draw(link_targets(depth, entry_names)), mtime=draw(mtimes))
        else:
            node = draw(files())
        entries.append((name, node))
    d = Dir(entries, mode=draw(st.sampled_from([0o755, 0o700, 0o555, 0o2775])), mtime=draw(mtimes))
    if len(entries) >= 2 and draw(st.booleans()):
        d.pages = draw(page_split(len(entries)))
    return d


# Mutations: each takes `draw` and the model, and changes the model in place.


def all_dirs(model: Model) -> list[tuple[Dir, int]]:
    """Each directory object once, with the depth it was first seen at."""
    seen, out, stack = set(), [], [(model.root, 0)]
    while stack:
        d, depth = stack.pop()
        if id(d) not in seen:
            seen.add(id(d))
            out.append((d, depth))
            stack.extend((c, depth + 1) for _, c in reversed(d.entries) if isinstance(c, Dir))
    return out


def insert(d: Dir, name: str, node: Node, at: int | None = None) -> None:
    """Add an entry (by default at its sorted place), keeping the pages covering the entries."""
    if at is None:
        at = next((i for i, (n, _) in enumerate(d.entries) if n > name), len(d.entries))
    d.entries.insert(at, (name, node))
    if d.pages:
        start = 0
        for p, count in enumerate(d.pages):
            if at <= start + count:
                d.pages[p] += 1
                return
            start += count
        d.pages[-1] += 1


def fresh(d: Dir, stem: str) -> str:
    taken = {n for n, _ in d.entries}
    return next(f"{stem}{i}" for i in itertools.count() if f"{stem}{i}" not in taken)


def pick_dir(draw, model: Model, min_entries: int = 0) -> tuple[Dir, int]:
    d, depth = draw(st.sampled_from(all_dirs(model)))
    while len(d.entries) < min_entries:
        insert(d, fresh(d, "f"), F(b"filler"))
    return d, depth


def pick_entry(draw, model: Model, kinds=(File, Link, Dir)) -> tuple[Dir, int, int]:
    """(directory, index, depth) of an entry of one of `kinds`, made in the root if none."""
    found = [(d, i, depth) for d, depth in all_dirs(model)
             for i, (_, node) in enumerate(d.entries) if isinstance(node, kinds)]
    if not found:
        node = {File: F(b"hellow"), Link: Link("."), Dir: D(f=F(b"x"))}[kinds[0]]
        insert(model.root, fresh(model.root, "e"), node)
        return pick_entry(draw, model, kinds)
    return draw(st.sampled_from(found))


HOSTILE_NAMES = ["", ".", "..", "a/b", "/", "a\0b", "\ud800", "\udc80", "x\udcff", "x" * 256,
                 "é" * 128, "日" * 86, *LONG_NAMES]


def bad_name(draw, model: Model) -> None:
    d, i, _ = pick_entry(draw, model)
    d.entries[i] = (draw(st.sampled_from(HOSTILE_NAMES)), d.entries[i][1])
    d.entries.sort(key=lambda e: e[0])


def duplicate_name(draw, model: Model) -> None:
    """The same name twice, within a page or across two, possibly a link then a directory."""
    d, i, depth = pick_entry(draw, model)
    name, node = d.entries[i]
    twin = draw(st.sampled_from([
        node, F(b"evil"), Link("../" * (depth + 1) + "victim"), Link("."),
        D(secret=F(b"pwned")), D(x=D(secret=F(b"pwned")))]))
    at = i + draw(st.integers(0, 1))
    insert(d, name, twin, at)
    if draw(st.booleans()):  # the two on either side of a page boundary
        d.pages, d.page_lies = [i + 1, len(d.entries) - i - 1], {}


def unsort(draw, model: Model) -> None:
    d, _ = pick_dir(draw, model, min_entries=2)
    i = draw(st.integers(0, len(d.entries) - 2))
    d.entries[i], d.entries[i + 1] = d.entries[i + 1], d.entries[i]


def hostile_link(draw, model: Model) -> None:
    d, depth = pick_dir(draw, model)
    up = "../" * (depth + 1)
    target = draw(st.sampled_from([
        "/etc/passwd", "/", "//x", up + "victim", up + "victim/secret", up.rstrip("/"),
        "x/../y", "x/..", "./x/../..", "a/../../b", "", "a\0b", "\ud800", "\udc80x",
        "x" * (MAX_TARGET + 1), "./" + "../" * depth + "x", "x" * 4000]))
    insert(d, fresh(d, "link"), Link(target))


def link_chain(draw, model: Model) -> None:
    """Links through links: l -> . then z -> l/.. (or climbing further), or a loop."""
    d, depth = pick_dir(draw, model)
    a, b = fresh(d, "l"), fresh(d, "z")
    first, second = draw(st.sampled_from([
        (".", f"{a}/.."), (".", f"{a}/" + "../" * (depth + 1)), ("..", f"{a}/x"), (b, a)]))
    insert(d, a, Link(first))
    insert(d, b, Link(second))


def chunk_lie(draw, model: Model) -> None:
    d, i, _ = pick_entry(draw, model, (File,))
    f = d.entries[i][1]
    if not f.chunks:
        f.chunks = [b"hellow"]
    j = draw(st.integers(0, len(f.chunks) - 1))
    real = len(f.chunks[j])
    if real >= 2 and draw(st.booleans()):  # [[h, k], [h, real]]: a prefix of the chunk, then all
        f.chunks, f.listed = [f.chunks[j]] * 2, [draw(st.integers(1, real - 1)), real]
    else:  # mostly a size in range (only reading the chunk shows the lie), else out of range
        listed = f.listed_sizes()
        in_range = [real + 1, real - 1 if real > 1 else real + 2, 1000]
        listed[j] = draw(st.sampled_from(in_range + [0, -1, MAX_CHUNK + 1]
                                         if draw(st.integers(0, 3)) == 3 else in_range))
        f.listed = listed
    if draw(st.integers(0, 3)) == 0:  # the file size may stay the real one: a second lie
        f.size = len(f.content)


def size_lie(draw, model: Model) -> None:
    d, i, _ = pick_entry(draw, model, (File,))
    f = d.entries[i][1]
    f.size = f.listed_size() + draw(st.sampled_from([1, -1, 100, -f.listed_size() - 1]))


def dir_totals_lie(draw, model: Model) -> None:
    d, i, _ = pick_entry(draw, model, (Dir,))
    sub = d.entries[i][1]
    files, nbytes = Totals().listed(sub)
    delta = draw(st.sampled_from([1, -1, 1000]))
    if draw(st.booleans()):
        sub.files = files + delta
    else:
        sub.bytes = nbytes + delta


def bundle_totals_lie(draw, model: Model) -> None:
    files, nbytes = Totals().children(model.root)
    if draw(st.booleans()):
        model.files = files + 1 if files == 0 or draw(st.booleans()) else files - 1
    else:
        model.bytes = nbytes + draw(st.sampled_from([1, 1000]))


def setuid(draw, model: Model) -> None:  # allowed: the bits are stripped on download
    d, i, _ = pick_entry(draw, model, (File,))
    d.entries[i][1].mode |= draw(st.sampled_from([0o4000, 0o2000, 0o6000]))


def bad_mtime(draw, model: Model) -> None:
    d, i, _ = pick_entry(draw, model)
    d.entries[i][1].mtime = draw(st.sampled_from([10**30, -10**30, INT64.stop, INT64.start - 1]))


def bad_mode(draw, model: Model) -> None:
    d, i, _ = pick_entry(draw, model)
    d.entries[i][1].mode = draw(st.sampled_from([0o10000, -1, 0o177777]))


def page_index_lie(draw, model: Model) -> None:
    d, _ = pick_dir(draw, model, min_entries=2)
    if not d.pages:
        d.pages = draw(page_split(len(d.entries)))
    p = draw(st.integers(0, len(d.pages) - 1))
    kind = draw(st.sampled_from(["count", "first", "empty"]))
    if kind == "count":
        d.page_lies[p] = (None, d.pages[p] + draw(st.sampled_from([1, -1])))
    elif kind == "first":
        names = [n for n, _ in d.entries] + ["zzz", "", "\0"]
        d.page_lies[p] = (draw(st.sampled_from(names)), None)
    else:  # an empty page
        d.pages.insert(p, 0)
        d.page_lies = {}


def deep_chain(draw, model: Model) -> None:
    components = draw(st.sampled_from([MAX_COMPONENTS, MAX_COMPONENTS + 1, 300]))
    node: Node = F(b"deep")
    for _ in range(components - 1):
        node = Dir([("d", node)])
    insert(model.root, fresh(model.root, "deep"), node)


def tree_bomb(draw, model: Model) -> None:
    """Directory objects each naming the next one twice: 2**levels paths. Unless small,
    every level claims a single file below it."""
    levels = draw(st.integers(1, 10))
    honest = levels <= 3 and draw(st.booleans())
    node = D(f=F(b"x"))
    for _ in range(levels):
        claims = {} if honest else {"files": 1, "bytes": 1}
        node = Dir([("a", node), ("b", node)], **claims)
    insert(model.root, fresh(model.root, "bomb"), node)


def share_subtree(draw, model: Model) -> None:
    """The same directory object under a second name elsewhere (a DAG; valid when its links
    still stay inside from the new depth)."""
    d, i, _ = pick_entry(draw, model, (Dir,))
    shared = d.entries[i][1]
    below = {id(x) for x, _ in all_dirs(Model(shared))}
    targets = [t for t, _ in all_dirs(model) if id(t) not in below]
    target = draw(st.sampled_from(targets))
    insert(target, fresh(target, "shared"), shared)


MUTATIONS = [bad_name, duplicate_name, unsort, hostile_link, link_chain, chunk_lie, size_lie,
             dir_totals_lie, bundle_totals_lie, setuid, bad_mtime, bad_mode, page_index_lie,
             deep_chain, tree_bomb, share_subtree]


def glob_matches(glob: str, path: str) -> bool:
    """The --filter grammar (docs/CLI.md), matched name by name: an oracle independent of
    core/globs.py's regular expressions. A match of leading names covers what is below."""
    pattern, names = glob.strip("/").split("/"), path.split("/")

    def match(i: int, j: int) -> bool:
        if i == len(pattern):
            return True
        if pattern[i] == "**":
            return match(i + 1, j) or (j < len(names) and match(i, j + 1))
        return j < len(names) and fnmatch.fnmatchcase(names[j], pattern[i]) and match(i + 1, j + 1)

    if "/" in glob.rstrip("/"):
        return match(0, 0)
    return any(match(0, j) for j in range(len(names)))


def glob_for(draw, model: Model) -> str:
    paths = ["/".join(c) for c in Oracle(model).file_paths(8)] or ["x"]
    p = draw(st.sampled_from(paths))
    k = draw(st.integers(0, len(p)))
    glob = draw(st.sampled_from([p, p[:k] + "*", "*" + p[k:], p[:k] + "?" + p[k + 1:],
                                 "*" + p.rsplit("/", 1)[-1], "nothing-*", "*b*"]))
    return glob if utf8(glob) is not None else "*"


@st.composite
def cases(draw) -> Case:
    model = Model(draw(dirs()))
    for mutation in draw(st.lists(st.sampled_from(MUTATIONS), max_size=2)):
        mutation(draw, model)
    return Case(model, glob_for(draw, model))


# -- the tests ------------------------------------------------------------------------------------


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=cases())
def test_hostile_bundles(world, case):
    report = check_case(world, case)
    event("bundle: " + ("well formed" if report.problem is None else "structural violation"))
    event(f"exit codes: {report.codes}")


def run(world, root: Dir, glob: str = "*", **bundle_totals) -> Report:
    return check_case(world, Case(Model(root, **bundle_totals), glob))


def test_valid_bundle_downloads_exactly(world):
    root = D(a=F(b"hello world", 5, mode=0o4755), b=D(c=Link("../a"), d=F(b"", mode=0o2600)),
             l=Link("."), loop1=Link("loop2"), loop2=Link("loop1"), n=Link("b/c"))
    report = run(world, root, glob="b/*")
    assert report.problem is None and report.codes == [0, 0, 0]


def test_link_through_a_dot_link(world):
    report = run(world, D(l=Link("."), z=Link("l/..")), glob="*")
    assert report.problem and report.codes == [4, 4, 4]


def test_link_climbing_through_a_dot_link_in_a_subdirectory(world):
    report = run(world, D(sub=D(l=Link("."), esc=Link("l/../.."))))
    assert report.problem and report.codes == [4, 4, 4]


def test_escape_through_links_and_a_cross_page_duplicate(world):
    """sub/b -> a/../.. with sub/a -> . resolves to the sandbox; a second 'sub/b' (a
    directory, on the next page) would then write sandbox/victim/secret."""
    sub = Dir([("a", Link(".")), ("b", Link("a/../..")), ("az", F(b"z")),
               ("b", D(victim=D(secret=F(b"pwned"))))], pages=[2, 2])
    report = run(world, D(sub=sub), glob="sub/b/*")
    assert report.problem and report.codes == [4, 4, 4]


def test_duplicate_names_across_pages(world):
    root = Dir([("a", F(b"1")), ("b", F(b"2")), ("b", F(b"3")), ("c", F(b"4"))], pages=[2, 2])
    report = run(world, root)
    assert report.problem and report.codes == [4, 4, 4]


def test_chunk_listed_as_a_prefix_then_whole(world):
    """[[h, 3], [h, 6]] for the 6-byte chunk h: reads must fail, not serve b'helhel...'.
    'a' holds h honestly, so the block cache has it when 'b' is read."""
    root = D(a=F(b"hellow"), b=File([b"hellow", b"hellow"], listed=[3, 6]))
    report = run(world, root, glob="b")
    assert report.problem is None and report.codes == [4, 4, 4]
    for label in ("store", "cache"):
        assert report.reads["a", label] == ["ok"] * 3
        # read(0, 10) and read(0, 1) touch the lying [h, 3]; read(3, 5) only the honest [h, 6]
        whole, _, first = report.reads["b", label]
        assert whole == first == errno.EIO, report.reads["b", label]


def test_chunk_listed_longer_than_it_is(world):
    root = D(a=F(b"hellow"), b=File([b"hellow"], listed=[1000]))
    report = run(world, root, glob="b")
    assert report.codes == [4, 4, 4]
    for label in ("store", "cache"):
        assert report.reads["b", label] == [errno.EIO] * 3, report.reads["b", label]


@pytest.mark.parametrize("mtime", [10**30, -10**30, 2**63])
@pytest.mark.parametrize("kind", ["file", "link", "dir"])
def test_mtime_out_of_range(world, mtime, kind):
    node = {"file": F(b"x", mtime=mtime), "link": Link("x", mtime=mtime),
            "dir": Dir([("f", F(b"y"))], mtime=mtime)}[kind]
    report = run(world, D(x=node))
    assert report.problem and report.codes == [4, 4, 4]


@pytest.mark.parametrize("components, code", [(256, 0), (257, 4), (300, 4)])
def test_deep_tree(world, components, code):
    node: Node = F(b"bottom")
    for _ in range(components):  # the outermost directory is the root
        node = Dir([("d", node)])
    report = run(world, node)
    assert report.codes == [code] * 3


@pytest.mark.timeout(60)
def test_tree_bomb(world):
    """25 directory objects, each naming the next twice, the last holding a file: 2**24
    paths, while every level and the bundle claim a single file."""
    node = D(f=F(b"x"))
    for _ in range(24):
        node = Dir([("a", node), ("b", node)], files=1, bytes=1)
    report = run(world, node, glob="a/*f", files=1, bytes=1)
    assert report.problem and report.codes == [4, 4, 4]


def test_small_honest_dag_is_a_valid_bundle(world):
    node = D(f=F(b"x"))
    for _ in range(3):
        node = Dir([("a", node), ("b", node)])
    report = run(world, node)
    assert report.problem is None and report.codes == [0, 0, 0]
