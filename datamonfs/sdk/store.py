"""`datamonfs.open()`: a store, its repos, and bundles by ref.

    import datamonfs
    store = datamonfs.open()                       # the config's store (or the default one)
    store = datamonfs.open("gs://bucket/prefix")   # or a URL, a local path
    store = datamonfs.open(config="team.toml")     # or another config file (a context)
    df = pandas.read_csv(store.bundle("sales:v1").open("2024/q1.csv"))

One Store per process and store is plenty: it holds the store's client, the process's
block cache (shared with every other datamonfs process of the user) and a pool of
read-ahead threads. It is thread-safe; close it (or use `with`) to stop the threads.
"""

from __future__ import annotations

import datetime
from typing import Iterable

from ..cache import CachedChunkReader, InPlaceReader, cached_repository
from ..core import config as config_mod
from ..core.lineage import walk
from ..core.encoding import is_address
from ..core.model import Input
from ..core.names import check_name
from ..core.repository import Author, Repository
from ..core.stores import StoreSpec
from ..errors import DatamonError, InvalidName
from .bundle import Bundle
from .lineage import Lineage
from .repo import Repo


class Store:
    """A datamonfs store: repos, bundles, refs, lineage. Made by `datamonfs.open`."""

    def __init__(self, config: config_mod.Config, spec: StoreSpec, author: Author | None = None,
                 create: bool = False):
        self.config = config
        self.spec = spec
        self._author = author
        repository, reader = cached_repository(config, spec, create=create)
        self.repository: Repository = repository  # the core engine, for what the API lacks
        self.reader: CachedChunkReader | InPlaceReader = reader

    @property
    def url(self) -> str:
        return self.spec.url

    @property
    def author(self) -> Author:
        """Who bundles, labels and repos made through this handle are recorded as: the
        `author` given to open(), else the config's name and email (ConfigError if none)."""
        return self._author or self.config.author

    def repos(self) -> list[Repo]:
        """Every repo of the store, by name."""
        return [Repo(self, info) for info in self.repository.list_repos()]

    def repo(self, name: str) -> Repo:
        """The repo `name` (NotFound when there is none)."""
        return Repo(self, self.repository.get_repo(name))

    def create_repo(self, name: str, description: str = "") -> Repo:
        """Create a repo (AlreadyExists when it exists)."""
        return Repo(self, self.repository.create_repo(name, description, self.author))

    def bundle(self, ref: str) -> Bundle:
        """The bundle a ref names: REPO:REF (a label, a branch, or a bundle id or a prefix
        of one of at least 4 hex digits), REPO alone (the head of main), REF~N (the Nth
        first parent). NotFound, AmbiguousRef or InvalidName otherwise."""
        return Bundle(self, self.repository.resolve(ref))

    resolve = bundle

    def bundle_by_id(self, repo: str, bundle_id: str) -> Bundle:
        """The bundle with this full id (64 hex digits) in `repo`: one read, no ref lookup."""
        if not is_address(bundle_id):
            raise InvalidName(f"{bundle_id!r:.100} is not a bundle id (64 hex digits)")
        return Bundle(self, self.repository.get_bundle(check_name(repo, "repo name"), bundle_id))

    def lineage(self, bundle: "Bundle | str", up: bool = True, down: bool = True,
                depth: int | None = None) -> Lineage:
        """What a bundle was made from (up: its inputs, their inputs, ...) and what was
        made from it (down), across the repos of the store, `depth` generations each way
        (None: all, up to core.lineage.MAX_NODES bundles)."""
        if depth is not None and depth < 0:
            raise DatamonError("depth must be 0 or more")
        start = bundle if isinstance(bundle, Bundle) else self.bundle(bundle)
        graph = walk(self.repository.store, self.repository.get_bundle, start.record,
                     up=up, down=down, depth=depth)
        return Lineage(graph, {k: Bundle(self, b) for k, b in graph.bundles.items()})

    def inputs(self, bundles: Iterable["Bundle | Input | str"]) -> tuple[Input, ...]:
        """Bundles, Inputs or refs as the `inputs` a new bundle records (each must be a
        bundle of this store), without repeats."""
        out: list[Input] = []
        for b in bundles:
            if isinstance(b, str):
                b = self.bundle(b)
            elif isinstance(b, Input):
                b = self.bundle_by_id(b.repo, b.bundle)
            elif not isinstance(b, Bundle):
                raise InvalidName(f"an input must be a Bundle or a REPO:REF, not {b!r:.100}")
            else:
                self.repository.get_bundle(b.repo, b.id)  # of this store
            if Input(b.repo, b.id) not in out:
                out.append(Input(b.repo, b.id))
        return tuple(out)

    def close(self) -> None:
        """Stop the read-ahead threads (the cache stays open for the process)."""
        self.reader.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<datamonfs.Store {self.url}>"


def open(store: "str | StoreSpec | None" = None, *, config: "config_mod.Config | str | None" = None,
         author: "Author | tuple[str, str] | None" = None, create: bool = False) -> Store:
    """Open a store.

    store: a URL (`gs://BUCKET[/PREFIX]`, `file:///path`) or a local path; default the
      config's store ($DATAMONFS_STORE, else the config file's `store`, else the default
      local store under $XDG_DATA_HOME/datamonfs/store).
    config: a Config, or the path of a config file (default: $DATAMONFS_CONFIG, else
      $XDG_CONFIG_HOME/datamonfs/config.toml); its credential file, cache directory and
      author are used.
    author: (name, email) recorded on what is written, over the config's.
    create: make a missing local store directory (the default store is always made).
    """
    cfg = config_mod.load(config) if isinstance(config, str) else config or config_mod.load()
    if isinstance(store, StoreSpec):
        spec = store
    elif store is not None:
        spec = StoreSpec.from_environment(store, cfg.credential)
    else:
        spec = cfg.store_spec()
        create = create or cfg.store_is_default
    if isinstance(author, tuple):
        author = Author(*author)
    return Store(cfg, spec, author, create)


def when_ns(value: "datetime.datetime | str | int | None", what: str,
            end: bool = False) -> int | None:
    """A time given to a query: a datetime (naive: local time, as Python has it), ISO 8601
    text (without a zone: UTC) or ns since the epoch. Datetimes hold microseconds: with
    `end` (an `until`), the whole microsecond is included."""
    if value is None or isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value)
        except ValueError:
            raise DatamonError(f"{what} {value!r:.100} is not an ISO 8601 time "
                               "(2024-05-01 or 2024-05-01T12:00:00+00:00)") from None
        if value.tzinfo is None:  # text without a zone is UTC, as datamonfs prints times
            value = value.replace(tzinfo=datetime.timezone.utc)
    if not isinstance(value, datetime.datetime):
        raise DatamonError(f"{what} must be a datetime, ISO 8601 text or nanoseconds")
    since_epoch = value.astimezone(datetime.timezone.utc) - _EPOCH
    micros = since_epoch // datetime.timedelta(microseconds=1)  # exact: no float
    return micros * 1000 + (999 if end else 0)


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
