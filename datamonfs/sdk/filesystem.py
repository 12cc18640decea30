"""`datamon://` for fsspec, hence pandas, pyarrow, dask and everything else that takes URLs.

    pandas.read_csv("datamon://sales@v1/2024/q1.csv")
    pandas.read_parquet("datamon://sales/tables/orders.parquet", columns=["amount"])
    fs = fsspec.filesystem("datamon", message="cleaned", label="v2")
    with fs.transaction:
        df.to_parquet("datamon://sales@main/clean/orders.parquet")   # one new bundle

URL grammar (the part after `datamon://`; docs/PYTHON.md):

    ""                      the store: its repos, as directories
    REPO[@REF][/PATH]       PATH in the bundle REPO:REF names; without @REF the head of
                            branch main. REF is a label, a branch, a bundle id or a prefix
                            of one (at least 4 hex digits), optionally ~N (N first parents
                            up). Names hold no '@' or '/', so the first '@' and the first
                            '/' end REPO and REF. PATH: names separated by '/', checked by
                            sdk/paths.py (no '..', no NUL).

Reads resolve REF at each call (a file opened stays on the bundle it opened: reads of one
file never mix two bundles) and read through the block cache, fetching just the chunks a
range needs: pyarrow reading one column of a Parquet file fetches that column's chunks and
the footer's, not the file. Writes need a transaction (`with fs.transaction:`; outside
one, a write fails saying so): every file written (staged when closed), removed or copied
under REPO@BRANCH during it is staged in one NewBundle per branch, and each becomes one bundle on its branch
when the transaction ends normally (nothing is recorded when it raises). A branch that does
not exist yet starts empty. `fs.committed` lists the bundles the last transaction made.
"""

from __future__ import annotations

import datetime
from typing import Any

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem
from fsspec.transaction import Transaction

from ..core.names import DEFAULT_BRANCH, check_name, is_name, parse_branch_ref
from ..errors import DatamonError, NotFound, PathNotFound
from .bundle import Bundle
from .files import FileInfo
from .paths import split_path
from .store import Store, open as open_store
from .writing import NewBundle, StagedFile

PROTOCOL = "datamon"


class TransactionRequired(DatamonError):
    """A write to datamon:// outside `with fs.transaction:` (exit 1)."""

    code = "transaction_required"


class _Location:
    """A parsed URL path: the repo, the ref (None: the head of main) and the names."""

    __slots__ = ("head", "repo", "ref", "names")

    def __init__(self, path: str):
        head, _, rest = path.partition("/")
        self.head = head  # as written, so listings give back names in the caller's form
        repo, at, ref = head.partition("@")
        if not is_name(repo):
            raise PathNotFound(f"{PROTOCOL}://{path[:200]}: {repo[:100]!r} is not a repo name "
                               f"(write {PROTOCOL}://REPO[@REF]/PATH)")
        if at and not ref:
            raise PathNotFound(f"{PROTOCOL}://{path[:200]}: nothing after '@'; write "
                               "REPO@LABEL, REPO@BRANCH or REPO@BUNDLE-ID, or REPO alone")
        self.repo, self.ref = repo, (ref or None)
        self.names = split_path(rest)

    @property
    def inner(self) -> str:
        return "/".join(self.names)

    def name(self, inner: str) -> str:
        """The fsspec name of a path of this bundle."""
        return f"{self.head}/{inner}" if inner else self.head


class BundleTransaction(Transaction):
    """fsspec's transaction, plus: the NewBundles staged during it become bundles
    (or are dropped) when it ends."""

    def complete(self, commit: bool = True) -> None:
        fs = self.fs
        files_done = False
        try:
            super().complete(commit)
            files_done = True
        finally:
            fs._end_bundles(commit and files_done)


class DatamonFileSystem(AbstractFileSystem):
    """fsspec filesystem over a datamonfs store (protocol `datamon`); see the module.

    Options (fsspec storage_options): `store` (a URL or path; default the config's),
    `config` (a config file), `author` ((name, email)), and for the bundles a
    transaction makes: `message`, `label`, `inputs` (Bundles or REPO:REF refs), `process`
    (see NewBundle)."""

    protocol = PROTOCOL
    root_marker = ""
    transaction_type = BundleTransaction
    cachable = True

    def __init__(self, store: "str | Store | None" = None, config: str | None = None,
                 author: tuple[str, str] | None = None, message: str = "",
                 label: str | None = None, inputs: tuple = (), process: Any = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.store = store if isinstance(store, Store) else open_store(
            store, config=config, author=tuple(author) if author else None)
        self.bundle_options = {"message": message or "written through datamon:// (fsspec)",
                               "label": label, "inputs": tuple(inputs), "process": process}
        self._pending: dict[tuple[str, str], NewBundle] = {}
        self.committed: list[Bundle] = []

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if path.startswith(f"{PROTOCOL}://"):
            path = path[len(PROTOCOL) + 3:]
        elif path.startswith(f"{PROTOCOL}::"):
            path = path[len(PROTOCOL) + 2:]
        return path.strip("/")

    def unstrip_protocol(self, name: str) -> str:
        return f"{PROTOCOL}://{name}"

    # -- reading -------------------------------------------------------------

    def _bundle(self, loc: _Location) -> Bundle:
        """The bundle a location names; an unknown repo or ref is a FileNotFoundError
        (PathNotFound) saying which, as a missing file would be."""
        try:
            return self.store.bundle(f"{loc.repo}:{loc.ref or DEFAULT_BRANCH}")
        except NotFound as e:
            if isinstance(e, PathNotFound):
                raise
            raise PathNotFound(str(e)) from None

    def _info(self, loc: _Location, info: FileInfo, bundle: Bundle) -> dict:
        kind = {"file": "file", "dir": "directory", "link": "link"}[info.kind]
        out = {"name": loc.name(info.path), "size": info.size, "type": kind,
               "mode": info.mode, "mtime": info.mtime_ns / 1e9, "address": info.address,
               "bundle": bundle.id, "repo": bundle.repo}
        if info.target is not None:
            out["destination"] = info.target
            out["islink"] = True
        return out

    def info(self, path: str, **kwargs) -> dict:
        path = self._strip_protocol(path)
        if not path:
            return {"name": "", "size": 0, "type": "directory"}
        loc = _Location(path)
        bundle = self._bundle(loc)
        return self._info(loc, bundle.stat(loc.inner), bundle)

    def ls(self, path: str, detail: bool = True, **kwargs):
        path = self._strip_protocol(path)
        if not path:
            entries = [{"name": r.name, "size": 0, "type": "directory"}
                       for r in self.store.repos()]
        else:
            loc = _Location(path)
            bundle = self._bundle(loc)
            info = bundle.stat(loc.inner)
            items = bundle.iterdir(loc.inner) if info.is_dir else [info]
            entries = [self._info(loc, i, bundle) for i in items]
        return entries if detail else [e["name"] for e in entries]

    def find(self, path: str, maxdepth: int | None = None, withdirs: bool = False,
             detail: bool = False, **kwargs):
        """One walk of the bundle's tree (AbstractFileSystem.find would list each
        directory with its own ls)."""
        path = self._strip_protocol(path)
        if not path:
            return super().find(path, maxdepth=maxdepth, withdirs=withdirs, detail=detail,
                                **kwargs)
        loc = _Location(path)
        if maxdepth is not None and maxdepth < 1:
            raise ValueError("maxdepth must be at least 1")
        bundle = self._bundle(loc)
        top = bundle.stat(loc.inner)
        out: dict[str, dict] = {}
        if not top.is_dir:
            out[loc.name(top.path)] = self._info(loc, top, bundle)
        else:
            if withdirs and loc.names:
                out[loc.name(top.path)] = self._info(loc, top, bundle)
            depth0 = len(loc.names)
            for info in bundle.walk(loc.inner, dirs=withdirs):
                if maxdepth is not None and info.path.count("/") + 1 - depth0 > maxdepth:
                    continue
                out[loc.name(info.path)] = self._info(loc, info, bundle)
        names = sorted(out)
        return {n: out[n] for n in names} if detail else names

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs):
        loc = _Location(self._strip_protocol(path))
        bundle = self._bundle(loc)
        info, reader = bundle.open_reader(loc.inner)
        try:
            start = 0 if start is None else start if start >= 0 else max(info.size + start, 0)
            end = info.size if end is None else end if end >= 0 else max(info.size + end, 0)
            return reader.read(start, max(min(end, info.size) - start, 0))
        finally:
            reader.close()

    def ukey(self, path: str) -> str:
        """The content address: equal for equal content, whatever the bundle."""
        return self.info(path)["address"]

    def modified(self, path: str) -> datetime.datetime:
        loc = _Location(self._strip_protocol(path))
        return self._bundle(loc).stat(loc.inner).mtime

    def _open(self, path: str, mode: str = "rb", block_size=None, autocommit: bool = True,
              cache_options=None, **kwargs):
        path = self._strip_protocol(path)
        if mode == "rb":
            return DatamonFile(self, path, block_size=block_size, cache_options=cache_options,
                               **kwargs)
        if mode not in ("wb", "xb"):
            raise NotImplementedError(f"mode {mode!r}: datamon:// files are read ('rb') or "
                                      "written whole ('wb') in a transaction")
        if autocommit:
            self._refuse_write(path)
        return DatamonWriteFile(self, path, mode=mode, block_size=block_size, autocommit=False)

    # -- writing, in a transaction -------------------------------------------

    def _refuse_write(self, path: str) -> None:
        raise TransactionRequired(
            f"{PROTOCOL}://{path[:200]}: writes become a new bundle, so they need a "
            "transaction: `with fs.transaction: ...` (fs = fsspec.filesystem('datamon'))")

    def _staging(self, path: str) -> tuple[NewBundle, _Location]:
        """The NewBundle of the transaction for the branch a path names (REPO@BRANCH, or
        REPO for main), started on first use."""
        if not self._intrans:
            self._refuse_write(path)
        loc = _Location(path)
        repo, branch = parse_branch_ref(f"{loc.repo}:{loc.ref}" if loc.ref else loc.repo)
        key = (repo, branch)
        if key not in self._pending:
            o = self.bundle_options
            self._pending[key] = self.store.repo(repo).new_bundle(
                branch=check_name(branch, "branch name"), message=o["message"],
                label=o["label"], inputs=o["inputs"], process=o["process"])
        return self._pending[key], loc

    def _end_bundles(self, commit: bool) -> None:
        pending, self._pending = self._pending, {}
        made: list[Bundle] = []
        try:
            for nb in pending.values():
                if commit:
                    made.append(nb.commit())
                else:
                    nb.abort()
        finally:
            for nb in pending.values():
                nb.abort()  # after an error: drop the rest (a committed one is left as is)
            self.committed = made
            self.invalidate_cache()

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs) -> None:
        nb, loc = self._staging(self._strip_protocol(path))
        nb.write_bytes(loc.inner, value)

    def put_file(self, lpath: str, rpath: str, callback=None, mode: str = "overwrite",
                 **kwargs) -> None:
        import os

        nb, loc = self._staging(self._strip_protocol(rpath))
        if os.path.isdir(lpath):
            nb.mkdir(loc.inner)
        else:
            nb.put_file(lpath, loc.inner)

    def cp_file(self, path1: str, path2: str, **kwargs) -> None:
        """A copy inside the store reuses the source's chunks (nothing is read)."""
        src = _Location(self._strip_protocol(path1))
        nb, loc = self._staging(self._strip_protocol(path2))
        nb.copy(self._bundle(src), src.inner, loc.inner)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs) -> None:
        self.makedirs(path, exist_ok=True)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """In a transaction, an empty directory in the new bundle; outside one, nothing
        when the directory exists (writers such as pandas make the parent first)."""
        path = self._strip_protocol(path)
        if not self._intrans and exist_ok and path and self.isdir(path):
            return
        nb, loc = self._staging(path)
        if not exist_ok and nb.exists(loc.inner):
            raise FileExistsError(f"{PROTOCOL}://{path}")
        nb.mkdir(loc.inner)

    def rm_file(self, path: str) -> None:
        nb, loc = self._staging(self._strip_protocol(path))
        nb.remove(loc.inner)

    def rm(self, path, recursive: bool = False, maxdepth: int | None = None) -> None:
        for p in [path] if isinstance(path, str) else path:
            nb, loc = self._staging(self._strip_protocol(p))
            if not recursive and nb.is_dir(loc.inner):
                raise IsADirectoryError(f"{PROTOCOL}://{p}: a directory; rm(recursive=True)")
            nb.remove(loc.inner)

    def rmdir(self, path: str) -> None:
        self.rm(path, recursive=True)


class DatamonFile(AbstractBufferedFile):
    """A file of a bundle opened for reading: ranges come from the block cache through
    the mounts' FileReader (its own read-ahead for sequential reads), so fsspec's cache
    is off by default."""

    def __init__(self, fs: DatamonFileSystem, path: str, block_size=None, cache_options=None,
                 cache_type: str = "none", **kwargs):
        loc = _Location(path)
        bundle = fs._bundle(loc)
        info, self._reader = bundle.open_reader(loc.inner)
        self.bundle = bundle
        super().__init__(fs, path, mode="rb", block_size=block_size or 1 << 20,
                         cache_type=cache_type, cache_options=cache_options, size=info.size,
                         **kwargs)
        self.details = fs._info(loc, info, bundle)

    def _fetch_range(self, start: int, end: int) -> bytes:
        return self._reader.read(start, max(end - start, 0))

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._reader.close()


class DatamonWriteFile(AbstractBufferedFile):
    """A file written in a transaction: its bytes go to a StagedFile of the transaction's
    NewBundle for its branch, staged there when the file is closed (so later calls of the
    transaction see it); the transaction's end commits or drops the whole NewBundle."""

    def __init__(self, fs: DatamonFileSystem, path: str, mode: str = "wb", block_size=None,
                 autocommit: bool = False):
        nb, loc = fs._staging(path)
        if mode == "xb" and nb.exists(loc.inner):
            raise FileExistsError(f"{PROTOCOL}://{path}")
        self._staged: StagedFile = nb.open(loc.inner)
        super().__init__(fs, path, mode="wb", block_size=block_size, autocommit=autocommit)

    def _upload_chunk(self, final: bool = False) -> bool:
        self._staged.write(self.buffer.getvalue())
        if final:
            self._staged.close()
        return True

    def commit(self) -> None:
        if not self.closed:
            self.close()

    def discard(self) -> None:
        self._staged.discard()
