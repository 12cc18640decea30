"""Write the golden store of format 2: the format-1 golden store, plus what today's
writers add to it (docs/FORMAT.md §12).

    python scripts/make_golden_store.py [DIR]        (DIR defaults to tests/data)

copies DIR/golden-store/ (format 1, written by the writers of version 1 and kept as it
is: today's writers no longer write format 1; its bundles A, B, C and D) to
DIR/golden-store-v2/, adds two bundles of format 2 and writes DIR/golden-store-v2.json
(what a reader must find in it):
- E, the head of main: a commit on bundle B, with the core's commit, that changes one
  byte of `seventeen.bin` (its first ten chunks stay the loose chunks of format 1, the
  re-cut rest goes into a pack: a chunk list of both kinds) and adds `packed.txt`;
  the untouched subtrees stay the trees of format 1;
- F, branch `packed`: bundle D's description written by today's writers, every chunk in
  packs (several: packs are sealed at PACK_BYTES here), the 17-chunk file in a chunks
  object with a pack table, `attrs.txt` with its extended attributes in the optional 7th
  element of an entry of format 2; made by a command from bundle D, so its record of
  format 2 carries provenance (`inputs`, `process`).
tests/unit/test_golden_store.py reads both golden stores with today's code and builds
this one again with `build` to compare byte for byte, so a change of the format shows
up as a failing test. Run this only when the format changes on purpose (and update
docs/FORMAT.md with it).

Everything is written by the library's own writers (DirectoryBuilder, file_entry,
ChunkUploader, ObjectStore, Repository, core.commit); only the clocks, the random part
of ref keys and the random pack ids are fixed, so two runs write identical bytes. Three
liberties keep the store small, all within what the format allows a writer (a reader
accepts them, FORMAT.md says so):
- some files are cut by hand into chunks of a few bytes (FastCDC would keep a file under
  16 KiB whole), so that a file of 17 chunks, one past the inline limit, has a chunks
  object;
- the directory `names/` is paged at 3 entries a page instead of the writer's 1024;
- packs are sealed at PACK_BYTES bytes instead of tens of MiB.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import blake3  # noqa: E402

from datamonfs.core import commit, packs, repository, trees  # noqa: E402
from datamonfs.core.chunks import cut  # noqa: E402
from datamonfs.core.encoding import VERSION, address  # noqa: E402
from datamonfs.core.ingest import ChunkUploader, UploadStats  # noqa: E402
from datamonfs.core.model import (LINK, Bundle, Entry, Input, Process, Provenance,  # noqa: E402
                                   xattrs_to_obj)
from datamonfs.core.repository import BRANCH, Author, Repository  # noqa: E402
from datamonfs.core.stores.local import LocalStore  # noqa: E402

V1_STORE, V1_EXPECTED = "golden-store", "golden-store.json"  # format 1: kept as they are
STORE_DIR = "golden-store-v2"
EXPECTED = "golden-store-v2.json"
PACK_BYTES = 100
REPO = "golden"
AUTHOR = Author("Golden Tester", "golden@example.org")
T = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z in ns: entries' mtimes are T + a few ns,
S = 1_000_000_000  # records' times T + some seconds
NAMES_PAGE = 3  # entries per page of names/ (the writer's default is trees.PAGE_SIZE)


@dataclass
class File:
    data: bytes | list[bytes]  # bytes: cut as an upload cuts them; a list: these chunks
    mtime: int = T
    mode: int = 0o644
    xattrs: tuple = ()  # (name, value) in name order: the entry's optional 7th element


@dataclass
class Link:
    target: str
    mtime: int = T


@dataclass
class Dir:
    children: dict = field(default_factory=dict)
    mtime: int = T
    mode: int = 0o755
    page_size: int | None = None


TINY = [f"chunk {i:02d}\n".encode() for i in range(17)]
NAMES = ["\x01control", "\ttab", '"quote"', "Zeta", "back\\slash", "café", "sub", "\x7fdel",
         "日本語", "ｚ fullwidth", "🙂"]  # in code point order: 🙂 (U+1F642) after ｚ (U+FF5A),
# where UTF-16 order would put it before


def _names_dir() -> Dir:
    children: dict = {n: File(n.encode() + b"\n", T + 10) for n in NAMES if n != "sub"}
    children["sub"] = Dir({"inner.txt": File(b"inside a paged directory\n", T + 11)}, T + 11)
    return Dir(children, T + 12, page_size=NAMES_PAGE)


def tree_a() -> Dir:
    return Dir({
        "empty": File(b""),
        "small.txt": File(b"hello, golden store\n", T + 1),
        "several.bin": File([b"alpha-", b"beta-", b"gamma\n"], T + 2),
        "sixteen.bin": File(TINY[:16], T + 3),  # the most chunks a file lists inline
        "seventeen.bin": File(TINY, T + 3, 0o600),  # one more: its own chunks object
        "old.txt": File(b"written before 1970\n", -86_400 * S - 1),  # negative mtime
        "link": Link("small.txt", T + 4),
        "nested": Dir({
            "deeper": Dir({
                "data.txt": File(b"deep\n", T + 5),
                "up": Link("../../small.txt", T + 5),
            }, T + 5, 0o750),
            "run.sh": File(b"#!/bin/sh\necho golden\n", T + 6, 0o755),
        }, T + 6),
        "void": Dir({}, T + 7, 0o700),
        "names": _names_dir(),
    }, T + 12)


def tree_b() -> Dir:
    """The second bundle on main: one file changed, one added, one removed; the rest,
    subtrees included, is shared with the first."""
    root = tree_a()
    root.children["small.txt"] = File(b"hello again, golden store\n", T + 20)
    root.children["added.txt"] = File(b"new in the second bundle\n", T + 20)
    del root.children["old.txt"]
    root.mtime = T + 20
    return root


def tree_d() -> Dir:
    """A fourth bundle, on branch attrs: the second plus one file with extended attributes
    (one value of text, one of bytes that are not UTF-8), in the optional 7th element."""
    root = tree_b()
    root.children["attrs.txt"] = File(b"a file with extended attributes\n", T + 30,
                                      xattrs=(("user.bytes", b"\x00\xff\xfe"),
                                              ("user.origin", b"golden store")))
    root.mtime = T + 30
    return root


class _Writer:
    """Writes entries with the library's writers and notes, by path, what a reader must
    find: from the description above, plus the addresses the writers gave."""

    def __init__(self, repo: Repository, uploader: ChunkUploader):
        self.repo = repo
        self.uploader = uploader
        self.expected: dict[str, dict] = {}

    def entry(self, path: str, node) -> Entry:
        name = path.rsplit("/", 1)[-1]
        if isinstance(node, Link):
            e = Entry(name, LINK, 0o777, node.mtime, len(node.target.encode()),
                      target=node.target)
            self._note(path, e, target=node.target)
        elif isinstance(node, File):
            pieces = node.data if isinstance(node.data, list) else list(cut(io.BytesIO(node.data)))
            refs = [self.uploader.add(data) for data in pieces]
            e = trees.file_entry(self.repo.objects, name, node.mode, node.mtime, refs,
                                 node.xattrs)
            self._note(path, e, blake3=address(b"".join(pieces)), chunks=len(pieces),
                       packs=len({r.pack for r in refs}),
                       **({"chunklist": e.chunklist} if e.chunklist else {}),
                       **({"xattrs": xattrs_to_obj(e.xattrs)} if e.xattrs else {}))
        else:
            prefix = f"{path}/" if path else ""
            entries = [self.entry(prefix + n, node.children[n]) for n in sorted(node.children)]
            page_size = node.page_size or trees.PAGE_SIZE
            with mock.patch.object(trees, "PAGE_SIZE", page_size):
                builder = trees.DirectoryBuilder(self.repo.objects)
                for child in entries:
                    builder.add(child)
                e = builder.dir_entry(name, node.mode, node.mtime)
            pages = 0 if len(entries) < page_size else -(-len(entries) // page_size)
            self._note(path, e, tree=e.tree, files=e.files, pages=pages)
        return e

    def _note(self, path: str, e: Entry, **more) -> None:
        if path:
            self.expected[path] = {"kind": e.kind, "mode": e.mode, "mtime": e.mtime,
                                   "size": e.size, **more}


@contextmanager
def _clock(when: int, rand: str):
    """Repository's clock and random source, fixed for one call."""
    clock = SimpleNamespace(time_ns=lambda: when)
    random = SimpleNamespace(urandom=lambda n: bytes.fromhex(rand)[:n])
    with mock.patch.object(repository, "time", clock), mock.patch.object(repository, "os", random):
        yield


@contextmanager
def _packs():
    """Pack ids from a counter, packs sealed at PACK_BYTES, never by age."""
    made = iter(range(1_000_000))
    with mock.patch.object(packs, "new_pack_id",
                           lambda: blake3.blake3(b"golden pack %d" % next(made)).hexdigest()), \
            mock.patch.object(packs, "PACK_TARGET", PACK_BYTES), \
            mock.patch.object(packs, "PACK_AGE", float("inf")):
        yield


SEVENTEEN_E = b"".join(TINY[:10]) + b"chunk 1X\n" + b"".join(TINY[11:])
PACKED = b"written by format 2, in a pack\n"


def bundle_e(repo: Repository, b: Bundle, expected_b: dict) -> tuple[Bundle, dict]:
    """Bundle E, a commit on B: one byte of seventeen.bin changed, packed.txt added."""
    old = repo.trees.lookup(b.tree, "seventeen.bin")
    at = 10 * len(TINY[0]) + 7

    def content(data: bytes):
        return lambda off, n: data[off:off + n]

    changes = {
        "packed.txt": commit.NewFile(0o644, T + 30, len(PACKED), content(PACKED)),
        "seventeen.bin": commit.NewFile(0o600, T + 30, len(SEVENTEEN_E), content(SEVENTEEN_E),
                                        old, ((at, at + 1),)),
    }
    root = commit.NewDir(0o755, T + 30, b.tree, lambda: sorted(changes.items()))
    with mock.patch.object(commit, "time", SimpleNamespace(time_ns=lambda: T + 600 * S)), \
            _clock(T + 601 * S, "1111111111111111"):
        result = commit.commit(repo, REPO, "main", b, root, "fifth bundle: a commit in format 2",
                               AUTHOR)
    entries = dict(expected_b)
    for name, data in (("packed.txt", PACKED), ("seventeen.bin", SEVENTEEN_E)):
        e = repo.trees.lookup(result.bundle.tree, name)
        refs = repo.trees.chunks(e)
        entries[name] = {"kind": "file", "mode": e.mode, "mtime": e.mtime, "size": e.size,
                         "blake3": address(data), "chunks": len(refs),
                         "packs": len({r.pack for r in refs if r.pack}),
                         "loose": sum(r.pack is None for r in refs)}
    return result.bundle, entries


MADE_BY = Process(("python3", "clean.py", "--in", "/data/in"), "node-1")


def build(root: str, v1: str) -> dict:
    """Copy the format-1 golden store `v1` into the empty or missing directory `root` and
    add the bundles of format 2; return what a reader must find in it (the content of
    golden-store-v2.json)."""
    if os.path.exists(root) and os.listdir(root):
        raise SystemExit(f"{root} is not empty")
    with open(os.path.join(os.path.dirname(v1), V1_EXPECTED), encoding="ascii") as f:
        doc = json.load(f)
    shutil.copytree(v1, root, dirs_exist_ok=True)
    store = LocalStore(root)
    repo = Repository(store)
    b, d = doc["bundles"]["B"]["id"], doc["bundles"]["D"]["id"]
    doc["format"] = VERSION
    with _packs():
        e, entries = bundle_e(repo, repo.get_bundle(REPO, b), doc["bundles"]["B"]["entries"])
        doc["bundles"]["E"] = {"id": e.id, "tree": e.tree, "parents": [b], "time": e.time,
                               "files": e.files, "bytes": e.bytes, "message": e.message,
                               "entries": entries}
        repo.refresh_locations()
        uploader = ChunkUploader(repo, UploadStats())
        writer = _Writer(repo, uploader)
        top = writer.entry("", tree_d())
        uploader.finish()
    message = "sixth bundle: the fourth one's files, written in format 2 by a command"
    made_from = Provenance((Input(REPO, d),), MADE_BY)
    f = repo.write_bundle(Bundle(REPO, top.tree, (), message, AUTHOR.name, AUTHOR.email,
                                 T + 700 * S, top.files, top.size, made_from.inputs,
                                 made_from.process))
    doc["bundles"]["F"] = {"id": f.id, "tree": f.tree, "parents": [], "time": f.time,
                           "files": f.files, "bytes": f.bytes, "message": message,
                           "entries": writer.expected, **made_from.to_obj()}
    with _clock(T + 701 * S, "2222222222222222"):
        repo.append_ref(REPO, BRANCH, "packed", f.id, AUTHOR)
    store.close()
    os.rmdir(os.path.join(root, ".tmp"))
    # Newest first; REF as the CLI takes it (label, branch, bundle id prefix).
    doc["logs"]["branch/main"].insert(0, e.id)
    doc["logs"]["branch/packed"] = [f.id]
    doc["lineage"][d] = [[REPO, f.id]]  # F's marker under D (§5.8)
    doc["refs"] |= {REPO: e.id, f"{REPO}:main": e.id, f"{REPO}:packed": f.id,
                    f"{REPO}:{e.id[:8]}": e.id, f"{REPO}:{f.id[:8]}": f.id}
    return doc


def write_expected(doc: dict, path: str) -> None:
    with open(path, "w", encoding="ascii") as f:
        json.dump(doc, f, indent=1, sort_keys=True, ensure_ascii=True)
        f.write("\n")


def main(argv: list[str]) -> None:
    out = argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(HERE), "tests", "data")
    root = os.path.join(out, STORE_DIR)
    if os.path.isdir(root):
        if not set(os.listdir(root)) <= {"chunk", "meta", "repo", "bundle", "ref", "lineage",
                                         "pack", "packidx", ".tmp"}:
            raise SystemExit(f"{root} holds more than a store; not replacing it")
        shutil.rmtree(root)
    os.makedirs(out, exist_ok=True)
    write_expected(build(root, os.path.join(out, V1_STORE)), os.path.join(out, EXPECTED))
    print(f"wrote {root} and {os.path.join(out, EXPECTED)}")


if __name__ == "__main__":
    main(sys.argv)
