"""`Repo`: one dataset: its bundles (with filters and pages), labels, branches, new bundles,
and the history of a path."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from ..core import ingest, queries
from ..core.model import Provenance, RefRecord, RepoInfo
from ..core.names import DEFAULT_BRANCH, check_name
from ..core.repository import BRANCH, LABEL
from ..errors import AlreadyExists, DatamonError
from .bundle import Bundle
from .files import FileInfo, _when
from .paths import split_path
from .writing import NewBundle, ProcessLike, make_process

if TYPE_CHECKING:
    from .store import Store


@dataclass(frozen=True)
class Ref:
    """A label or a branch as it is now (or one record of its log): the bundle it names,
    when it was moved there, by whom."""

    repo: str
    kind: str  # "label" or "branch"
    name: str
    bundle: str  # the bundle id
    time_ns: int
    author: str
    email: str

    @property
    def time(self) -> datetime.datetime:
        return _when(self.time_ns)

    def to_json(self) -> dict:
        return {"repo": self.repo, "kind": self.kind, "name": self.name, "bundle": self.bundle,
                "time": self.time.isoformat(timespec="seconds"), "author": self.author,
                "email": self.email}

    @classmethod
    def of(cls, r: RefRecord) -> "Ref":
        return cls(r.repo, r.kind, r.name, r.bundle, r.time, r.author_name, r.author_email)


@dataclass(frozen=True)
class PathChange:
    """One bundle in a path's history (`Repo.log`): the path was "added", "modified" or
    "deleted" there, against its first parent; `info` is the path then (None: deleted)."""

    bundle: Bundle
    change: str
    info: FileInfo | None

    def to_json(self) -> dict:
        return {"bundle": self.bundle.id, "time": self.bundle.time.isoformat(timespec="seconds"),
                "author": self.bundle.author, "message": self.bundle.message,
                "change": self.change, **({"size": self.info.size, "address": self.info.address}
                                          if self.info else {})}


class Repo:
    """A repo of a store (`store.repo(NAME)`)."""

    def __init__(self, store: "Store", info: RepoInfo):
        self._store = store
        self.info = info

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def description(self) -> str:
        return self.info.description

    @property
    def time(self) -> datetime.datetime:
        return _when(self.info.time)

    @property
    def author(self) -> str:
        return self.info.author_name

    @property
    def email(self) -> str:
        return self.info.author_email

    def to_json(self) -> dict:
        """As `datamonfs repo get --json` prints it."""
        return {"name": self.name, "description": self.description,
                "time": self.time.isoformat(timespec="seconds"), "author": self.author,
                "email": self.email}

    def __repr__(self) -> str:
        return f"<Repo {self.name}>"

    # -- bundles -------------------------------------------------------------

    def bundle(self, ref: str = DEFAULT_BRANCH) -> Bundle:
        """The bundle REF names in this repo: a label, a branch, a bundle id or prefix,
        with ~N for ancestors. Default: the head of main."""
        return self._store.bundle(f"{self.name}:{ref}")

    def head(self, branch: str = DEFAULT_BRANCH) -> Bundle | None:
        """The head of a branch, or None when the branch has no bundle yet."""
        record = self._store.repository.ref_head(self.name, BRANCH, check_name(branch, "branch name"))
        return self._store.bundle_by_id(self.name, record.bundle) if record else None

    def bundles(self, branch: str | None = None, label: str | None = None,
                author: str | None = None, since=None, until=None, grep: str | None = None,
                limit: int | None = None, offset: int = 0) -> list[Bundle]:
        """Bundles, newest first: all, or those `branch`'s or `label`'s log has named; of
        those, the ones whose "NAME <EMAIL>" holds `author` and whose message holds `grep`
        (plain text, ignoring case), made within [since, until] (datetimes, ISO 8601 text
        or ns). Pages: `offset` bundles skipped, then at most `limit`."""
        from .store import when_ns

        where = queries.BundleFilter(author, when_ns(since, "since"),
                                     when_ns(until, "until", end=True), grep)
        found = queries.find_bundles(self._store.repository, self.name, branch, label, where)
        if offset < 0 or (limit is not None and limit < 0):
            raise DatamonError("offset and limit must be 0 or more")
        end = None if limit is None else offset + limit
        return [Bundle(self._store, b) for b in found[offset:end]]

    def decorations(self) -> dict[str, dict[str, list[str]]]:
        """Bundle id -> {"branches": [...], "labels": [...]} naming it now (git's --decorate)."""
        names: dict[str, dict[str, list[str]]] = {}
        for kind, key in ((BRANCH, "branches"), (LABEL, "labels")):
            for r in self._store.repository.list_refs(self.name, kind):
                names.setdefault(r.bundle, {"branches": [], "labels": []})[key].append(r.name)
        return names

    def log(self, path: str, ref: str = DEFAULT_BRANCH, limit: int | None = None
            ) -> Iterator[PathChange]:
        """The history of one path: the bundles, newest first along first parents from
        REF, in which it was added, modified or deleted. Subtrees equal in a bundle and
        its parent are skipped by address, so a path that rarely changes is cheap."""
        names = split_path(path)
        start = self.bundle(ref)
        for c in queries.path_history(self._store.repository, start.record, names, limit):
            info = FileInfo.of("/".join(names), c.entry) if c.entry is not None else None
            yield PathChange(Bundle(self._store, c.bundle), c.change, info)

    # -- refs ----------------------------------------------------------------

    def labels(self) -> list[Ref]:
        """Every label and the bundle it names now, by name."""
        return [Ref.of(r) for r in self._store.repository.list_refs(self.name, LABEL)]

    def branches(self) -> list[Ref]:
        return [Ref.of(r) for r in self._store.repository.list_refs(self.name, BRANCH)]

    def ref_log(self, kind: str, name: str) -> list[Ref]:
        """Every record of a label's or branch's log, newest first ([] when it does not
        exist)."""
        if kind not in (LABEL, BRANCH):
            raise DatamonError(f"kind must be {LABEL!r} or {BRANCH!r}")
        self._store.repository.get_repo(self.name)
        return [Ref.of(r) for r in self._store.repository.ref_log(self.name, kind, name)]

    def set_label(self, name: str, ref: "str | Bundle" = DEFAULT_BRANCH
                  ) -> tuple[Ref | None, Ref | None]:
        """Point label `name` at the bundle `ref` names: (what the label named before or
        None, the new record or None when it named that bundle already: nothing is
        recorded then). A branch's name is refused."""
        bundle = ref if isinstance(ref, Bundle) else self.bundle(ref)
        before, record = self._store.repository.set_label(self.name, name, bundle.id,
                                                          self._store.author)
        return (Ref.of(before) if before else None), (Ref.of(record) if record else None)

    def create_branch(self, name: str, ref: "str | Bundle" = DEFAULT_BRANCH) -> Ref:
        """Start branch `name` at the bundle `ref` names (refused when it exists, or when a
        label has that name)."""
        bundle = ref if isinstance(ref, Bundle) else self.bundle(ref)
        repository = self._store.repository
        if repository.ref_head(self.name, BRANCH, check_name(name, "branch name")):
            raise AlreadyExists(f"branch {name!r} already exists in {self.name!r}")
        return Ref.of(repository.append_ref(self.name, BRANCH, name, bundle.id,
                                            self._store.author))

    # -- writing -------------------------------------------------------------

    def new_bundle(self, branch: str = DEFAULT_BRANCH, message: str = "",
                   label: str | None = None, inputs: Iterable["Bundle | str"] = (),
                   process: ProcessLike = None, empty: bool = False,
                   allow_empty: bool = False,
                   progress: Callable[[int], None] | None = None) -> NewBundle:
        """A new bundle on `branch`, written in a `with` block (see NewBundle): it starts
        from the branch head (or from nothing: `empty`, or a branch without bundles), is
        committed when the block ends normally and leaves nothing named when it raises.
        `inputs` (Bundles or refs) and `process` record what it was made from."""
        return NewBundle(self._store, self.name, branch, message, label,
                         self._store.inputs(inputs), process, empty, allow_empty, progress)

    def upload(self, directory: str, message: str, branch: str = DEFAULT_BRANCH,
               label: str | None = None, inputs: Iterable["Bundle | str"] = (),
               process: ProcessLike = None, allow_empty: bool = False,
               progress: Callable[[int], None] | None = None) -> "Upload":
        """A local directory as a new bundle on `branch` (`datamonfs bundle upload`): its
        tree is the directory's, its parent the branch head, one directory in memory at a
        time. When the directory equals the head no bundle is made unless `allow_empty`
        (the label is set to the head)."""
        store = self._store
        made_from = Provenance(store.inputs(inputs), make_process(process))
        record, stats = ingest.upload(store.repository, self.name, directory, message,
                                      store.author, branch, label, progress, allow_empty,
                                      made_from)
        return Upload(Bundle(store, record), stats.new_bundle, stats)


@dataclass(frozen=True)
class Upload:
    """What `Repo.upload` did: the bundle (the head, when nothing was new), whether it was
    made, and counts (files, bytes, chunks, chunks_uploaded, bytes_uploaded)."""

    bundle: Bundle
    created: bool
    stats: ingest.IngestStats
