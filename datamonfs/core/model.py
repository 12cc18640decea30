"""Records of the store: entries, trees, chunk lists, bundles, refs, repos.

Each record class turns itself into a canonical object (`to_obj`) and is parsed
back from untrusted store bytes with every field checked (`from_obj`): a hostile
store can make reads fail with IntegrityError, never escape or crash them. (One
field may be checked later: the read-only mount keeps a file's inline chunk list
unchecked until the file is opened, `file_chunks`; nothing of it is used before.)
Every record field by field: docs/FORMAT.md §5 (normative).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field as dc_field
from typing import Any, NamedTuple

from ..errors import IntegrityError
from . import names, rules
from .chunks import ChunkRef
from .encoding import VERSION, field, is_address, written_version

FILE, DIR, LINK = "file", "dir", "link"

Xattrs = tuple[tuple[str, bytes], ...]  # (name, value), sorted by name


def check_entry_name(name: object, where: str) -> str:
    problem = rules.name_problem(name)
    if problem is not None or not isinstance(name, str):
        raise IntegrityError(f"{where}: refusing entry named {name!r:.300} ({problem or 'not text'})")
    return name


def _count(obj: dict, name: str, where: str) -> int:
    value = field(obj, name, int, where)
    if rules.size_problem(value):
        raise IntegrityError(f"{where}: field {name!r} is out of range")
    return value


def chunk_list_obj(refs) -> tuple[list, list[str]]:
    """A chunk list as stored: (chunks, packs). A chunk is [ADDR, LEN] when loose (format 1),
    else [ADDR, LEN, P, OFF]: its bytes are OFF.. of the P-th pack of `packs` (each pack
    listed once, in the order the list first names it)."""
    packs: dict[str, int] = {}
    chunks = []
    for ref in refs:
        if ref.pack is None:
            chunks.append([ref.addr, ref.size])
        else:
            chunks.append([ref.addr, ref.size, packs.setdefault(ref.pack, len(packs)), ref.offset])
    return chunks, list(packs)


def parse_chunk_list(raw: object, raw_packs: object, where: str) -> list[ChunkRef]:
    """The inverse of chunk_list_obj, every field checked; `raw_packs` None: a list of
    format 1, which holds loose chunks only."""
    if not isinstance(raw, list):
        raise IntegrityError(f"{where}: chunk list is not a list")
    packs: list[str] = []
    if raw_packs is not None:
        if (not isinstance(raw_packs, list) or not all(map(is_address, raw_packs))
                or len(set(raw_packs)) != len(raw_packs)):
            raise IntegrityError(f"{where}: malformed pack table")
        packs = raw_packs
    chunks = []
    for item in raw:
        if (not isinstance(item, list) or len(item) not in (2, 4) or not is_address(item[0])
                or rules.chunk_size_problem(item[1])):
            raise IntegrityError(f"{where}: malformed chunk reference {item!r:.80}")
        if len(item) == 2:
            chunks.append(ChunkRef(item[0], item[1]))
            continue
        p, offset = item[2], item[3]
        if type(p) is not int or not 0 <= p < len(packs) or rules.size_problem(offset):
            raise IntegrityError(f"{where}: malformed chunk location {item!r:.120}")
        chunks.append(ChunkRef(item[0], item[1], packs[p], offset))
    return chunks


def parse_file_body(body: object, where: str, version: int) -> list[ChunkRef] | str:
    """A file entry's body: its chunk list, or the address of a chunks object."""
    if isinstance(body, str):
        if not is_address(body):
            raise IntegrityError(f"{where}: malformed chunk list address")
        return body
    if isinstance(body, dict) and version >= 2:
        return parse_chunk_list(body.get("chunks"), field(body, "packs", list, where), where)
    return parse_chunk_list(body, None, where)


def xattrs_to_obj(xattrs: Xattrs) -> dict[str, str]:
    """Attributes as the 7th element holds them: name -> value in canonical base64."""
    return {name: base64.b64encode(value).decode("ascii") for name, value in xattrs}


def parse_xattrs(raw: object, where: str) -> Xattrs:
    """The `xattrs` object of an entry's 7th element: names allowed, values in canonical
    base64 (standard alphabet, padded, no whitespace), within the size rules."""
    if not isinstance(raw, dict) or not raw:
        raise IntegrityError(f"{where}: malformed extended attributes")
    pairs = []
    for name, text in raw.items():
        problem = rules.xattr_name_problem(name)
        if problem is None and not isinstance(text, str):
            problem = "the value is not base64 text"
        if problem is None:
            try:
                value = base64.b64decode(text.encode("ascii"), validate=True)
            except (UnicodeError, binascii.Error, ValueError):
                value = None
            if value is None or base64.b64encode(value).decode("ascii") != text:
                problem = "the value is not canonical base64"
        if problem:
            raise IntegrityError(f"{where}: refusing extended attribute {name!r:.300}: {problem}")
        pairs.append((name, value))
    return tuple(sorted(pairs))


def parse_optional(raw: object, kind: str, where: str) -> Xattrs:
    """An entry's optional 7th element: an object of optional fields, never empty.
    `xattrs` is the only one version 1 knows; others are ignored (docs/FORMAT.md §5.3)."""
    if not isinstance(raw, dict) or not raw:
        raise IntegrityError(f"{where}: malformed optional fields of the entry")
    xattrs = parse_xattrs(raw["xattrs"], where) if "xattrs" in raw else ()
    problem = rules.xattrs_problem(kind, xattrs)
    if problem:
        raise IntegrityError(f"{where}: {problem}")
    return xattrs


class Entry(NamedTuple):
    """One name in a directory. `chunks` (inline) or `chunklist` (an object) for
    files, `tree` plus subtree totals for directories, `target` for symlinks.

    A named tuple, not a dataclass: a page of 1,000 entries is parsed for every directory
    a walk visits, and a frozen dataclass took a third of that parse to construct.
    """

    name: str
    kind: str
    mode: int
    mtime: int  # nanoseconds since the epoch
    size: int  # file bytes; for a directory, the bytes of every file below it
    chunks: tuple[ChunkRef, ...] | None = None
    chunklist: str | None = None
    tree: str | None = None
    files: int = 0  # directories: files below (symlinks count as files)
    target: str | None = None
    xattrs: Xattrs = ()  # user.* extended attributes
    # An inline chunk list as the store holds it, not yet checked: only from a parse with
    # `defer_chunks` (the read-only mount), for TreeReader.chunks to check when the file is
    # opened. Such an entry is never written (to_obj refuses it).
    unchecked: list | dict | None = None

    def to_obj(self) -> list:
        # A list, not a dict: trees of a million names stay compact.
        if self.kind == FILE:
            if self.unchecked is not None:
                raise ValueError(f"entry {self.name!r}: its chunk list was never checked")
            body: Any = self.chunklist
            if not body:
                chunks, packs = chunk_list_obj(self.chunks or ())
                # Loose chunks only (a file kept from a format-1 bundle): as format 1 wrote it.
                body = {"chunks": chunks, "packs": packs} if packs else chunks
        elif self.kind == DIR:
            body = [self.tree, self.files]
        else:
            body = self.target
        obj = [self.name, self.kind, self.mode, self.mtime, self.size, body]
        if self.xattrs:  # the optional 7th element: absent when it would be empty
            obj.append({"xattrs": xattrs_to_obj(self.xattrs)})
        return obj

    @classmethod
    def from_obj(cls, raw: object, where: str, version: int = VERSION,
                 name_checked: bool = False, defer_chunks: bool = False) -> "Entry":
        """An entry of a tree record of `version`; `name_checked`: the caller has checked
        its name already (a page parser, which checks every name before its entry).
        `defer_chunks`: an inline chunk list is kept unchecked (`unchecked`), for
        `file_chunks` to check when the file's content is asked for."""
        if not isinstance(raw, list) or len(raw) not in (6, 7):
            raise IntegrityError(f"{where}: malformed directory entry")
        name, kind, mode, mtime, size, body = raw[:6]
        if not name_checked:
            check_entry_name(name, where)
        problem = rules.mode_problem(mode) or rules.time_problem(mtime) or rules.size_problem(size)
        if problem:
            raise IntegrityError(f"{where}: entry {name!r}: {problem}")
        # The message's prefix is made only when it is needed: most entries need none.
        xattrs = parse_optional(raw[6], kind, f"{where}: entry {name!r}") if len(raw) == 7 else ()
        make = cls._make
        if kind == FILE:
            if isinstance(body, str):
                if not is_address(body):
                    raise IntegrityError(f"{where}: entry {name!r}: malformed chunk list address")
                return make((name, FILE, mode, mtime, size, None, body, None, 0, None, xattrs,
                             None))
            if defer_chunks and (isinstance(body, list) or isinstance(body, dict) and version >= 2):
                return make((name, FILE, mode, mtime, size, None, None, None, 0, None, xattrs,
                             body))
            chunks = _inline_chunks(body, size, f"{where}: entry {name!r}", version)
            return make((name, FILE, mode, mtime, size, chunks, None, None, 0, None, xattrs,
                         None))
        if kind == DIR:
            if (not isinstance(body, list) or len(body) != 2 or not is_address(body[0])
                    or rules.size_problem(body[1])):
                raise IntegrityError(f"{where}: entry {name!r}: malformed directory reference")
            return make((name, DIR, mode, mtime, size, None, None, body[0], body[1], None,
                         xattrs, None))
        if kind == LINK:
            # Whether the target stays in the bundle depends on where the link is: the
            # walkers check that (rules.link_problem); here only its form.
            problem = rules.link_problem(body, rules.MAX_DEPTH)
            if problem is None and size != len(body.encode("utf-8")):
                problem = "its size is not its target's length"
            if problem:
                raise IntegrityError(f"{where}: entry {name!r}: refusing symlink {name} -> "
                                     f"{body!r:.300}: {problem}")
            return make((name, LINK, mode, mtime, size, None, None, None, 0, body, (), None))
        raise IntegrityError(f"{where}: entry {name!r}: unknown entry kind {kind!r:.20}")

    def same_as(self, other: "Entry | None") -> bool:
        """Equal but perhaps for the name (the names of a hard link, once committed)."""
        return other is not None and self == other._replace(name=self.name)

    @property
    def file_count(self) -> int:
        return self.files if self.kind == DIR else 1


def _inline_chunks(body: object, size: int, where: str, version: int) -> tuple[ChunkRef, ...]:
    """A file entry's inline chunk list, checked: its sizes add up to the file's."""
    chunks = tuple(parse_file_body(body, where, version))
    if sum(c.size for c in chunks) != size:
        raise IntegrityError(f"{where}: chunk sizes do not add up to the file size")
    return chunks


def file_chunks(entry: Entry, where: str) -> tuple[ChunkRef, ...] | None:
    """A file's inline chunk list, checked now if its parse deferred it; None when the
    list is in an object of its own (`chunklist`)."""
    if entry.unchecked is not None:
        # Read as of the current version: its parse deferred only what its tree's version
        # allows (a dict only from version 2), and a list reads the same in every version.
        return _inline_chunks(entry.unchecked, entry.size, where, VERSION)
    return entry.chunks


@dataclass(frozen=True)
class Input:
    """A bundle another bundle was made from (`inputs` of the bundle record)."""

    repo: str
    bundle: str

    def to_obj(self) -> dict:
        return {"repo": self.repo, "bundle": self.bundle}


@dataclass(frozen=True)
class Process:
    """What made a bundle (`process` of the bundle record): the command line, and where
    known the host it ran on, the notebook, the code's version and a free description.
    Empty texts are absent from the record."""

    command: tuple[str, ...]
    host: str = ""  # where it ran: the host name (in Kubernetes, the pod's)
    notebook: str = ""  # the notebook that made it (a path or a name)
    code_version: str = ""  # e.g. a git commit or a package version
    description: str = ""  # free text: what was done

    def to_obj(self) -> dict:
        texts = {name: getattr(self, name) for name in PROCESS_TEXTS}
        return {"command": list(self.command), **{k: v for k, v in texts.items() if v}}


PROCESS_TEXTS = ("host", "notebook", "code_version", "description")  # optional members


@dataclass(frozen=True)
class Provenance:
    """What a bundle was made from: the optional members `inputs` and `process` of its
    record, absent when empty. Parsed from a bundle record, or from a request that
    will become one (the daemon's commit op), by the same rules."""

    inputs: tuple[Input, ...] = ()
    process: Process | None = None

    def to_obj(self) -> dict:
        obj: dict = {}
        if self.inputs:
            obj["inputs"] = [i.to_obj() for i in self.inputs]
        if self.process is not None:
            obj["process"] = self.process.to_obj()
        return obj

    @classmethod
    def from_obj(cls, obj: dict, where: str) -> "Provenance":
        inputs = _parse_inputs(obj["inputs"], where) if "inputs" in obj else ()
        process = _parse_process(obj["process"], where) if "process" in obj else None
        return cls(inputs, process)


NO_PROVENANCE = Provenance()


def _parse_inputs(raw: object, where: str) -> tuple[Input, ...]:
    problem = rules.inputs_problem(raw)
    if problem:
        raise IntegrityError(f"{where}: {problem}")
    inputs = []
    for item in raw:
        if not isinstance(item, dict):
            raise IntegrityError(f"{where}: an input must be an object")
        repo, bundle = field(item, "repo", str, where), field(item, "bundle", str, where)
        if not is_address(bundle) or not names.is_name(repo):
            raise IntegrityError(f"{where}: malformed input {repo!r:.100}:{bundle!r:.80}")
        inputs.append(Input(repo, bundle))
    return tuple(inputs)


def _parse_process(raw: object, where: str) -> Process:
    if not isinstance(raw, dict):
        raise IntegrityError(f"{where}: field 'process' must be an object")
    command = raw.get("command")
    texts = [raw.get(name, "") for name in PROCESS_TEXTS]
    problem = rules.process_problem(command, *texts)
    if problem:
        raise IntegrityError(f"{where}: malformed process: {problem}")
    return Process(tuple(command), *texts)


@dataclass(frozen=True)
class Bundle:
    repo: str
    tree: str
    parents: tuple[str, ...]
    message: str
    author_name: str
    author_email: str
    time: int  # nanoseconds since the epoch
    files: int
    bytes: int
    # What it was made from, when known; absent from the record when empty, so a bundle
    # without them is byte for byte what it was before they existed (docs/FORMAT.md §5.5).
    inputs: tuple[Input, ...] = ()
    process: Process | None = None
    id: str = dc_field(default="", compare=False)

    def to_obj(self) -> dict:
        obj = {"v": written_version("bundle"), "type": "bundle", "repo": self.repo,
               "tree": self.tree, "parents": list(self.parents), "message": self.message,
               "author": {"name": self.author_name, "email": self.author_email},
               "time": self.time, "files": self.files, "bytes": self.bytes}
        return {**obj, **self.provenance.to_obj()}

    @property
    def provenance(self) -> Provenance:
        return Provenance(self.inputs, self.process)

    @classmethod
    def from_obj(cls, obj: dict, bundle_id: str, where: str) -> "Bundle":
        author = field(obj, "author", dict, where)
        parents = field(obj, "parents", list, where)
        tree = field(obj, "tree", str, where)
        if not is_address(tree) or not all(is_address(p) for p in parents):
            raise IntegrityError(f"{where}: malformed tree or parent address")
        made_from = Provenance.from_obj(obj, where)
        return cls(repo=field(obj, "repo", str, where), tree=tree, parents=tuple(parents),
                   message=field(obj, "message", str, where),
                   author_name=field(author, "name", str, where),
                   author_email=field(author, "email", str, where),
                   time=_count(obj, "time", where), files=_count(obj, "files", where),
                   bytes=_count(obj, "bytes", where), inputs=made_from.inputs,
                   process=made_from.process,
                   id=bundle_id)


@dataclass(frozen=True)
class RefRecord:
    """One entry of a branch's or label's append-only log."""

    repo: str
    kind: str  # "branch" or "label"
    name: str
    bundle: str
    time: int
    author_name: str
    author_email: str

    def to_obj(self) -> dict:
        return {"v": written_version("ref"), "type": "ref", "repo": self.repo, "kind": self.kind,
                "name": self.name, "bundle": self.bundle, "time": self.time,
                "author": {"name": self.author_name, "email": self.author_email}}

    @classmethod
    def from_obj(cls, obj: dict, where: str) -> "RefRecord":
        author = field(obj, "author", dict, where)
        bundle = field(obj, "bundle", str, where)
        if not is_address(bundle):
            raise IntegrityError(f"{where}: malformed bundle id")
        return cls(repo=field(obj, "repo", str, where), kind=field(obj, "kind", str, where),
                   name=field(obj, "name", str, where), bundle=bundle,
                   time=_count(obj, "time", where),
                   author_name=field(author, "name", str, where),
                   author_email=field(author, "email", str, where))


@dataclass(frozen=True)
class RepoInfo:
    name: str
    description: str
    time: int
    author_name: str
    author_email: str

    def to_obj(self) -> dict:
        return {"v": written_version("repo"), "type": "repo", "name": self.name, "description": self.description,
                "time": self.time, "author": {"name": self.author_name, "email": self.author_email}}

    @classmethod
    def from_obj(cls, obj: dict, where: str) -> "RepoInfo":
        author = field(obj, "author", dict, where)
        return cls(name=field(obj, "name", str, where),
                   description=field(obj, "description", str, where),
                   time=_count(obj, "time", where),
                   author_name=field(author, "name", str, where),
                   author_email=field(author, "email", str, where))
