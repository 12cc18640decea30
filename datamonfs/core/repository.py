"""Repos, bundles and refs in a store.

Store keys (the whole layout above chunks, packs and metadata objects; the
normative grammar of every key and record is docs/FORMAT.md):

    repo/REPO                                   repo record, written once
    bundle/REPO/ID                              bundle record; ID = BLAKE3 of its encoding
    ref/REPO/KIND/NAME/%020d-%016x             one immutable record of a ref's log (time in
                                                ns, then 8 random bytes in hex)

Refs are append-only logs: moving a branch or label writes a new record and the
head is the record with the greatest key. No compare-and-swap is needed, so two
writers at once never lose a bundle: both records stay in the log. A bundle record is written
only after every object it references is stored, and a ref record only after
its bundle.
"""

from __future__ import annotations

import difflib
import os
import re
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from ..errors import AlreadyExists, AmbiguousRef, IntegrityError, KeyNotFound, NotFound
from . import lineage
from .chunks import ChunkStore
from .encoding import address, decode, encode, is_address
from .model import DIR, Bundle, Entry, RefRecord, RepoInfo
from .names import DEFAULT_BRANCH, MIN_PREFIX, check_name, is_hex, is_name, split_ref
from .objects import MetaCache, ObjectStore
from .packs import ChunkLocations, MemoryLocations, refresh
from .stores.base import Store
from .trees import TreeReader, check_placement

BRANCH, LABEL = "branch", "label"
OTHER_KIND = {BRANCH: LABEL, LABEL: BRANCH}
WAIT_POLL_MAX = 1.0  # seconds between two looks of wait_ref, at most


@dataclass(frozen=True)
class Author:
    name: str
    email: str


class Repository:
    """Everything the core knows how to read and write in one store."""

    def __init__(self, store: Store, meta_cache: MetaCache | None = None,
                 locations: ChunkLocations | None = None):
        self.store = store
        self.chunks = ChunkStore(store)
        self.objects = ObjectStore(store, meta_cache)
        self.trees = TreeReader(self.objects)
        self.locations = locations or MemoryLocations()

    def refresh_locations(self) -> int:
        """Learn the chunks of the packs added to the store since the last time (writers
        call this before they start); how many pack indexes were read."""
        return refresh(self.chunks, self.locations)

    # -- repos ---------------------------------------------------------------

    def create_repo(self, name: str, description: str, author: Author) -> RepoInfo:
        check_name(name, "repo name")
        info = RepoInfo(name, description, time.time_ns(), author.name, author.email)
        if not self.store.put_if_absent(f"repo/{name}", encode(info.to_obj())):
            raise AlreadyExists(f"repo {name!r} already exists")
        return info

    def get_repo(self, name: str) -> RepoInfo:
        check_name(name, "repo name")
        try:
            data = self.store.get(f"repo/{name}")
        except KeyNotFound:
            raise NotFound(f"no repo named {name!r}; see 'datamonfs repo list'") from None
        info = RepoInfo.from_obj(decode(data, "repo", f"repo {name!r}"), f"repo {name!r}")
        if info.name != name:
            raise IntegrityError(f"repo record {name!r} names another repo")
        return info

    def list_repos(self) -> list[RepoInfo]:
        names = sorted(_key_tail(k, "repo/", is_name) for k in self.store.list("repo/"))
        return [self.get_repo(n) for n in names]

    # -- bundles -------------------------------------------------------------

    def write_bundle(self, bundle: Bundle) -> Bundle:
        """Record a bundle whose tree and chunks are already stored, then the lineage
        markers of its inputs (core/lineage.py), before any ref can name it."""
        data = encode(bundle.to_obj())
        bundle_id = address(data)
        self.store.put_if_absent(f"bundle/{bundle.repo}/{bundle_id}", data)
        bundle = Bundle(**{**bundle.__dict__, "id": bundle_id})
        for key in lineage.marker_keys(bundle):
            self.store.put_if_absent(key, b"")
        return bundle

    def get_bundle(self, repo: str, bundle_id: str) -> Bundle:
        where = f"bundle {bundle_id[:12]} of {repo!r}"
        try:
            data = self.store.get(f"bundle/{repo}/{bundle_id}")
        except KeyNotFound:
            raise NotFound(f"no bundle {bundle_id} in repo {repo!r}") from None
        if address(data) != bundle_id:
            raise IntegrityError(f"{where} is corrupt (its bytes do not match its id)")
        bundle = Bundle.from_obj(decode(data, "bundle", where), bundle_id, where)
        if bundle.repo != repo:
            raise IntegrityError(f"{where} belongs to repo {bundle.repo!r}")
        return bundle

    def bundle_ids(self, repo: str, prefix: str = "") -> list[str]:
        return [_key_tail(k, f"bundle/{repo}/", is_address)
                for k in self.store.list(f"bundle/{repo}/{prefix}")]

    def list_bundles(self, repo: str, branch: str | None = None) -> list[Bundle]:
        """Newest first. With a branch, the bundles its log has pointed at."""
        self.get_repo(repo)
        if branch is None:
            ids = self.bundle_ids(repo)
        else:
            log = self.ref_log(repo, BRANCH, branch)
            ids = list(dict.fromkeys(r.bundle for r in log))
        bundles = [self.get_bundle(repo, i) for i in ids]
        return sorted(bundles, key=lambda b: (b.time, b.id), reverse=True)

    # -- refs ----------------------------------------------------------------

    def _ref_prefix(self, repo: str, kind: str, name: str | None = None) -> str:
        return f"ref/{repo}/{kind}/" + (f"{name}/" if name else "")

    def check_ref_name(self, repo: str, kind: str, name: str) -> None:
        """A new branch may not take a label's name, nor a label a branch's: REPO:NAME
        must mean one thing (**Decision — names**, docs/ARCHITECTURE.md)."""
        check_name(name, f"{kind} name")
        other = OTHER_KIND[kind]
        if self.ref_head(repo, kind, name) is None and self.ref_head(repo, other, name):
            raise AlreadyExists(f"{repo!r} has a {other} named {name!r}; a {kind} may not take "
                                f"a {other}'s name: choose another")

    def append_ref(self, repo: str, kind: str, name: str, bundle_id: str, author: Author) -> RefRecord:
        self.check_ref_name(repo, kind, name)
        self.get_bundle(repo, bundle_id)  # a ref never points at a missing bundle
        now = time.time_ns()
        record = RefRecord(repo, kind, name, bundle_id, now, author.name, author.email)
        key = self._ref_prefix(repo, kind, name) + f"{now:020d}-{os.urandom(8).hex()}"
        self.store.put(key, encode(record.to_obj()))
        return record

    def set_label(self, repo: str, name: str, bundle_id: str, author: Author
                  ) -> tuple[RefRecord | None, RefRecord | None]:
        """Point a label at a bundle: (what it named before or None, the new record or None
        when it named that bundle already: then nothing is recorded)."""
        before = self.ref_head(repo, LABEL, name) if is_name(name) else None
        if before is not None and before.bundle == bundle_id:
            return before, None
        return before, self.append_ref(repo, LABEL, name, bundle_id, author)

    def ref_log(self, repo: str, kind: str, name: str) -> list[RefRecord]:
        """A ref's records, newest first; empty when the ref does not exist."""
        check_name(name, f"{kind} name")
        keys = sorted(self._ref_keys(repo, kind, name), reverse=True)
        return [self._read_ref(repo, kind, name, k) for k in keys]

    def _ref_keys(self, repo: str, kind: str, name: str) -> list[str]:
        prefix = self._ref_prefix(repo, kind, name)
        return [prefix + _key_tail(k, prefix, _REF_KEY.fullmatch) for k in self.store.list(prefix)]

    def _read_ref(self, repo: str, kind: str, name: str, key: str) -> RefRecord:
        where = f"{kind} {name!r} of {repo!r}"
        try:
            data = self.store.get(key)
        except KeyNotFound:
            raise IntegrityError(f"{where}: record {key} vanished") from None
        record = RefRecord.from_obj(decode(data, "ref", where), where)
        if (record.repo, record.kind, record.name, record.time) != (
                repo, kind, name, int(key.rsplit("/", 1)[1].split("-")[0])):
            raise IntegrityError(f"{where}: record {key} does not match its key")
        return record

    def ref_head(self, repo: str, kind: str, name: str) -> RefRecord | None:
        keys = self._ref_keys(repo, kind, name)
        return self._read_ref(repo, kind, name, max(keys)) if keys else None

    def wait_ref(self, repo: str, kind: str, name: str, timeout: float | None,
                 ) -> RefRecord | None:
        """The head of a ref as soon as it exists (`datamonfs wait`); None once `timeout`
        seconds (None: no limit) have passed without it. Polls the store: every 0.1 s at
        first, then less often, but at least once a second, so a waiter is released within
        about a second of the ref being set. The repo need not exist yet."""
        check_name(name, f"{kind} name")
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.1
        while True:
            head = self.ref_head(repo, kind, name)
            if head is not None:
                return head
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            time.sleep(pause if left is None else min(pause, left))
            pause = min(pause * 1.5, WAIT_POLL_MAX)

    def list_refs(self, repo: str, kind: str) -> list[RefRecord]:
        """The head record of every ref of one kind, by name."""
        self.get_repo(repo)
        newest: dict[str, str] = {}
        for key in self.store.list(self._ref_prefix(repo, kind)):
            parts = key.split("/")
            if len(parts) != 5 or not is_name(parts[3]) or not _REF_KEY.fullmatch(parts[4]):
                raise IntegrityError(f"unexpected key {key!r:.200} in the refs of {repo!r}")
            newest[parts[3]] = max(newest.get(parts[3], ""), key)
        return [self._read_ref(repo, kind, n, newest[n]) for n in sorted(newest)]

    # -- resolving -----------------------------------------------------------

    def resolve(self, text: str) -> Bundle:
        """REPO:REF[~N] to a bundle. REF is tried as a label, then a branch, then a
        bundle id or unique prefix of one; REPO alone is the head of main; ~N goes N
        generations up the first parents."""
        ref = split_ref(text)
        self.get_repo(ref.repo)
        bundle = self.get_bundle(ref.repo, self.resolve_id(ref.repo, ref.ref or DEFAULT_BRANCH))
        for generation in range(ref.back):
            if not bundle.parents:
                raise NotFound(f"{text!r}: bundle {bundle.id[:12]} has no parent ({generation} "
                               f"of {ref.back} generations up)")
            bundle = self.get_bundle(ref.repo, bundle.parents[0])
        return bundle

    def resolve_id(self, repo: str, ref: str) -> str:
        if is_name(ref):
            for kind in (LABEL, BRANCH):
                head = self.ref_head(repo, kind, ref)
                if head:
                    return head.bundle
        if is_hex(ref) and len(ref) >= MIN_PREFIX:
            ids = self.bundle_ids(repo, ref)
            if len(ids) == 1:
                return ids[0]
            if len(ids) > 1:
                raise AmbiguousRef(f"bundle id prefix {ref!r} matches {len(ids)} bundles in "
                                   f"{repo!r}; give more characters")
        if ref == DEFAULT_BRANCH:
            raise NotFound(f"repo {repo!r} has no bundles on branch main yet; "
                           "upload one with 'datamonfs bundle upload'")
        if is_hex(ref) and len(ref) < MIN_PREFIX:
            raise NotFound(f"no label or branch {ref!r} in repo {repo!r}, and a bundle id "
                           f"prefix needs at least {MIN_PREFIX} hex digits")
        raise NotFound(f"no label, branch or bundle {ref!r} in repo {repo!r}"
                       + self._suggestion(repo, ref))

    def _suggestion(self, repo: str, ref: str) -> str:
        names = {name: kind for kind in (LABEL, BRANCH) for name in self.ref_names(repo, kind)}
        close = difflib.get_close_matches(ref, list(names), n=3, cutoff=0.5)
        if not close:
            return f"; see 'datamonfs label list {repo}' and 'datamonfs branch list {repo}'"
        return "; did you mean " + " or ".join(f"{n!r} ({names[n]})" for n in close) + "?"

    def ref_names(self, repo: str, kind: str) -> list[str]:
        """The names of one kind of ref, from their keys alone (no record is read)."""
        prefix = self._ref_prefix(repo, kind)
        return sorted({k[len(prefix):].split("/", 1)[0] for k in self.store.list(prefix)
                       if is_name(k[len(prefix):].split("/", 1)[0])})

    def lookup(self, bundle: Bundle, path: str) -> Entry | None:
        """The entry at `path` (names separated by '/') in a bundle, or None."""
        names = [n for n in path.split("/") if n]
        tree, entry = bundle.tree, None
        for i, name in enumerate(names):
            entry = self.trees.lookup(tree, name)
            if entry is None or (i < len(names) - 1 and entry.kind != DIR):
                return None
            tree = entry.tree
        if entry is not None:
            check_placement(entry, "/".join(names))
        return entry

    def walk(self, bundle: Bundle, descend: Callable[[str], bool] | None = None
             ) -> Iterator[tuple[str, Entry]]:
        """Every entry of a bundle, depth first in name order, as (path, entry), checked
        against the bundle's rules as it goes (core.rules); `descend(dir_path + "/")`
        may prune directories."""
        return self.trees.walk(bundle.tree, (bundle.files, bundle.bytes), descend=descend)


_REF_KEY = re.compile(r"[0-9]{20}-[0-9a-f]{16}")


def _key_tail(key: str, prefix: str, valid: Callable[[str], object]) -> str:
    """What follows `prefix` in a listed key, which must be one valid name."""
    tail = key[len(prefix):] if key.startswith(prefix) else ""
    if not valid(tail):
        raise IntegrityError(f"unexpected key {key!r:.200} in the store; remove it")
    return tail
