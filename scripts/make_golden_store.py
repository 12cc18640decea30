"""Write the golden store: a small local store in on-store format version 1 (docs/FORMAT.md).

    python scripts/make_golden_store.py [DIR]        (DIR defaults to tests/data)

writes DIR/golden-store/ (the store) and DIR/golden-store.json (what a reader must find
in it). tests/unit/test_golden_store.py reads the checked-in copy with today's code and
builds it again with `build` to compare byte for byte, so a change of the format shows
up as a failing test. Run this only when the format changes on purpose (and update
docs/FORMAT.md with it).

Everything is written by the library's own writers (DirectoryBuilder, file_entry,
ChunkStore, ObjectStore, Repository); only the clock and the random part of ref keys
are fixed, so two runs write identical bytes. Two liberties keep the store small, both
within what the format allows a writer (a reader accepts them, FORMAT.md says so):
- some files are cut by hand into chunks of a few bytes (FastCDC would keep a file under
  256 KiB whole), so that a file of 17 chunks, one past the inline limit, has a chunks
  object;
- the directory `names/` is paged at 3 entries a page instead of the writer's 1024.
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

from datamonfs.core import repository, trees  # noqa: E402
from datamonfs.core.chunks import cut  # noqa: E402
from datamonfs.core.encoding import VERSION, address  # noqa: E402
from datamonfs.core.model import (LINK, NO_PROVENANCE, Bundle, Entry, Input,  # noqa: E402
                                   Process, Provenance, xattrs_to_obj)
from datamonfs.core.repository import BRANCH, LABEL, Author, Repository  # noqa: E402
from datamonfs.core.stores.local import LocalStore  # noqa: E402

STORE_DIR = "golden-store"
EXPECTED = "golden-store.json"
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


def tree_c() -> Dir:
    """A bundle made by a command from bundle A (`datamonfs run`): it records its inputs
    and the process (command line, host, notebook, code version, description), and leaves
    a lineage marker under bundle A."""
    return Dir({"result.txt": File(b"made from bundle A\n", T + 30)}, T + 30)


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

    def __init__(self, repo: Repository):
        self.repo = repo
        self.expected: dict[str, dict] = {}

    def entry(self, path: str, node) -> Entry:
        name = path.rsplit("/", 1)[-1]
        if isinstance(node, Link):
            e = Entry(name, LINK, 0o777, node.mtime, len(node.target.encode()),
                      target=node.target)
            self._note(path, e, target=node.target)
        elif isinstance(node, File):
            pieces = node.data if isinstance(node.data, list) else list(cut(io.BytesIO(node.data)))
            for data in pieces:
                self.repo.chunks.put(address(data), data)
            e = trees.file_entry(self.repo.objects, name, node.mode, node.mtime,
                                 [(address(data), len(data)) for data in pieces], node.xattrs)
            self._note(path, e, blake3=address(b"".join(pieces)), chunks=len(pieces),
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


def build(root: str) -> dict:
    """Write the golden store into the empty or missing directory `root`; return what a
    reader must find in it (the content of golden-store.json)."""
    if os.path.exists(root) and os.listdir(root):
        raise SystemExit(f"{root} is not empty")
    store = LocalStore(root)
    repo = Repository(store)
    doc: dict = {"format": VERSION, "repo": REPO, "bundles": {}}

    def bundle(tag: str, tree: Dir, parents: tuple[str, ...], when: int, message: str,
               made_from: Provenance = NO_PROVENANCE) -> str:
        writer = _Writer(repo)
        top = writer.entry("", tree)
        b = repo.write_bundle(Bundle(REPO, top.tree, parents, message, AUTHOR.name,
                                     AUTHOR.email, when, top.files, top.size,
                                     made_from.inputs, made_from.process))
        doc["bundles"][tag] = {"id": b.id, "tree": b.tree, "parents": list(parents),
                               "time": when, "files": b.files, "bytes": b.bytes,
                               "message": message, "entries": writer.expected,
                               **made_from.to_obj()}
        return b.id

    with _clock(T, ""):
        repo.create_repo(REPO, "The golden store of docs/FORMAT.md", AUTHOR)
    a = bundle("A", tree_a(), (), T + 100 * S, "first bundle: every kind of entry")
    with _clock(T + 101 * S, "00112233445566ff"):
        repo.append_ref(REPO, BRANCH, "main", a, AUTHOR)
    with _clock(T + 101 * S, "ffeeddccbbaa9988"):
        repo.append_ref(REPO, LABEL, "v1", a, AUTHOR)
    b = bundle("B", tree_b(), (a,), T + 200 * S,
               "second bundle: one changed, one added, one removed")
    with _clock(T + 201 * S, "0123456789abcdef"):
        repo.append_ref(REPO, BRANCH, "main", b, AUTHOR)
    with _clock(T + 300 * S, "a5a5a5a5a5a5a5a5"):
        repo.append_ref(REPO, BRANCH, "dev", a, AUTHOR)  # as 'branch create golden:v1 dev'
    c = bundle("C", tree_c(), (), T + 400 * S, "made by a command from bundle A",
               Provenance((Input(REPO, a),),
                          Process(("python3", "clean.py", "--in", "/data/in"), "node-1",
                                  notebook="notebooks/clean.ipynb", code_version="v1.2.0-3-g4fc1a2b",
                                  description="dropped the rows without a date\n\u00e9t\u00e9 2024")))
    with _clock(T + 401 * S, "5a5a5a5a5a5a5a5a"):
        repo.append_ref(REPO, BRANCH, "derived", c, AUTHOR)
    d = bundle("D", tree_d(), (b,), T + 500 * S, "fourth bundle: a file with extended attributes")
    with _clock(T + 501 * S, "3c3c3c3c3c3c3c3c"):
        repo.append_ref(REPO, BRANCH, "attrs", d, AUTHOR)
    store.close()
    os.rmdir(os.path.join(root, ".tmp"))
    # Newest first; REF as the CLI takes it (label, branch, bundle id prefix).
    doc["logs"] = {"branch/main": [b, a], "branch/dev": [a], "label/v1": [a],
                   "branch/derived": [c], "branch/attrs": [d]}
    doc["lineage"] = {a: [[REPO, c]]}  # what each bundle was made into (its markers, §2.3)
    doc["refs"] = {REPO: b, f"{REPO}:main": b, f"{REPO}:dev": a, f"{REPO}:v1": a,
                   f"{REPO}:{a[:8]}": a, f"{REPO}:{b[:8]}": b, f"{REPO}:derived": c,
                   f"{REPO}:attrs": d, f"{REPO}:{d[:8]}": d}
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
                                          ".tmp"}:
            raise SystemExit(f"{root} holds more than a store; not replacing it")
        shutil.rmtree(root)
    os.makedirs(out, exist_ok=True)
    write_expected(build(root), os.path.join(out, EXPECTED))
    print(f"wrote {root} and {os.path.join(out, EXPECTED)}")


if __name__ == "__main__":
    main(sys.argv)
