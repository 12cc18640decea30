"""datamon:// through fsspec, pandas and pyarrow, on both stores, with the configuration a
user has (DATAMONFS_CONFIG, DATAMONFS_STORE): the URL grammar, reads, writes in
transactions (and refused outside), round trips, and fsspec's own abstract Get tests."""

from __future__ import annotations

import importlib.metadata
import posixpath

import fsspec
import pandas as pd
import pyarrow.parquet as pq
import pytest
from fsspec.tests.abstract import AbstractFixtures, AbstractGetTests

import datamonfs
from datamonfs.sdk.filesystem import DatamonFileSystem, TransactionRequired


@pytest.fixture
def env(store_url, tmp_path, monkeypatch):
    """The environment a user of pandas has: a config with an author, a store."""
    config = tmp_path / "config.toml"
    config.write_text('name = "Ada"\nemail = "ada@example.org"\n')
    monkeypatch.setenv("DATAMONFS_CONFIG", str(config))
    monkeypatch.setenv("DATAMONFS_STORE", store_url)
    monkeypatch.setenv("DATAMONFS_CACHE_DIR", str(tmp_path / "cache"))
    DatamonFileSystem.clear_instance_cache()  # instances are cached by their options
    yield store_url
    DatamonFileSystem.clear_instance_cache()


FRAME = pd.DataFrame({"city": ["Oslo", "Lima", "Pune"], "temp": [3.5, 19.0, 31.25],
                      "year": [2024, 2024, 2025]})


@pytest.fixture
def sales(env):
    store = datamonfs.open(create=True)
    with store.create_repo("sales").new_bundle(message="seed", label="v1") as nb:
        nb.write_bytes("2024/q1.csv", FRAME.to_csv(index=False).encode())
        nb.write_bytes("2024/q2.csv", b"city,temp,year\nRome,22.0,2024\n")
        nb.write_bytes("notes/readme.txt", b"0123456789")
        with nb.open("tables/weather.parquet") as f:
            FRAME.to_parquet(f)
    yield nb.bundle
    store.close()


def test_the_protocol_is_registered_through_the_entry_point():
    points = importlib.metadata.entry_points(group="fsspec.specs")
    assert [p.value for p in points if p.name == "datamon"] == [
        "datamonfs.sdk.filesystem:DatamonFileSystem"]
    assert fsspec.get_filesystem_class("datamon") is DatamonFileSystem


@pytest.mark.parametrize("url, error", [
    ("datamon://nope/x.csv", "no repo named 'nope'"),
    ("datamon://sales@v9/x.csv", "no label, branch or bundle 'v9'"),
    ("datamon://sales@/x.csv", "nothing after '@'"),
    ("datamon://-sales/x.csv", "is not a repo name"),
    ("datamon://sales@v1/2024/q9.csv", "no file or directory '2024/q9.csv'"),
])
def test_unknown_repos_refs_and_paths_are_file_not_found(sales, url, error):
    with pytest.raises(FileNotFoundError, match=error):
        pd.read_csv(url)
    assert not fsspec.filesystem("datamon").exists(url)


def test_paths_escaping_the_bundle_are_refused(sales):
    for url in ("datamon://sales@v1/../x", "datamon://sales/2024/../../x", "datamon://sales/a\0"):
        with pytest.raises(ValueError, match="leave the bundle|cannot be a name"):
            fsspec.filesystem("datamon").cat(url)


def test_reads(sales):
    fs = fsspec.filesystem("datamon")
    assert [e["name"] for e in fs.ls("datamon://")] == ["sales"]
    assert fs.ls("datamon://sales@v1", detail=False) == [
        "sales@v1/2024", "sales@v1/notes", "sales@v1/tables"]
    info = fs.info("datamon://sales/notes/readme.txt")
    assert (info["type"], info["size"], info["bundle"]) == ("file", 10, sales.id)
    assert fs.info("datamon://sales@v1/2024")["type"] == "directory"
    assert fs.find("datamon://sales@v1/2024") == ["sales@v1/2024/q1.csv", "sales@v1/2024/q2.csv"]
    assert fs.find("datamon://sales", maxdepth=1, withdirs=True) == [
        "sales/2024", "sales/notes", "sales/tables"]
    assert fs.glob("datamon://sales@v1/**/*.csv") == ["sales@v1/2024/q1.csv",
                                                      "sales@v1/2024/q2.csv"]
    assert fs.cat("datamon://sales/notes/readme.txt") == b"0123456789"
    assert fs.cat_file("datamon://sales/notes/readme.txt", 2, 5) == b"234"
    assert fs.cat_file("datamon://sales/notes/readme.txt", -3) == b"789"
    assert fs.cat_file("datamon://sales/notes/readme.txt", 8, 100) == b"89"
    with fs.open("datamon://sales@v1/notes/readme.txt") as f:
        f.seek(4)
        assert f.read(3) == b"456" and f.tell() == 7
    assert fs.ukey("datamon://sales/2024/q2.csv") == sales.stat("2024/q2.csv").address
    assert fs.isdir("datamon://sales/notes") and fs.isfile("datamon://sales/notes/readme.txt")
    assert fs.modified("datamon://sales/notes/readme.txt") == sales.stat("notes/readme.txt").mtime


def test_pandas_and_pyarrow_read_and_write(sales):
    assert pd.read_csv("datamon://sales@v1/2024/q1.csv").equals(FRAME)
    assert pd.read_parquet("datamon://sales/tables/weather.parquet").equals(FRAME)
    assert pd.read_parquet("datamon://sales/tables/weather.parquet",
                           columns=["temp"])["temp"].tolist() == [3.5, 19.0, 31.25]
    files = fsspec.open_files("datamon://sales@v1/2024/*.csv")
    assert [f.path for f in files] == ["sales@v1/2024/q1.csv", "sales@v1/2024/q2.csv"]
    assert pd.concat(pd.read_csv(f.open()) for f in files)["city"].tolist() == [
        "Oslo", "Lima", "Pune", "Rome"]
    hot = FRAME[FRAME.temp > 10]
    fs = fsspec.filesystem("datamon", message="hot days", label="hot", inputs=["sales:v1"])
    with fs.transaction:
        hot.to_parquet("datamon://sales@main/derived/hot.parquet",
                       storage_options={"message": "hot days", "label": "hot",
                                        "inputs": ["sales:v1"]})
        hot.to_csv("datamon://sales/derived/hot.csv", index=False,
                   storage_options={"message": "hot days", "label": "hot",
                                    "inputs": ["sales:v1"]})
    [made] = fs.committed
    assert made.message == "hot days" and made.parents == (sales.id,)
    assert [i.bundle for i in made.inputs] == [sales.id]
    assert pd.read_parquet("datamon://sales@hot/derived/hot.parquet").equals(hot)
    assert pd.read_csv("datamon://sales@hot/derived/hot.csv").equals(hot.reset_index(drop=True))
    table = pq.read_table("sales@hot/derived/hot.parquet", filesystem=fs, columns=["city"])
    assert table.column("city").to_pylist() == ["Lima", "Pune"]


def test_writes_need_a_transaction(sales, tmp_path):
    fs = fsspec.filesystem("datamon")
    (tmp_path / "local.txt").write_bytes(b"local")
    for write in (lambda: fs.open("datamon://sales/new.txt", "wb"),
                  lambda: fs.pipe("datamon://sales/new.txt", b"x"),
                  lambda: fs.rm("datamon://sales/notes", recursive=True),
                  lambda: fs.put(str(tmp_path / "local.txt"), "datamon://sales/local.txt"),
                  lambda: fs.cp("datamon://sales/notes/readme.txt", "datamon://sales/c.txt"),
                  lambda: fs.mkdir("datamon://sales/newdir"),
                  lambda: FRAME.to_csv("datamon://sales/f.csv")):
        with pytest.raises(TransactionRequired, match=r"need a transaction"):
            write()
    fs.makedirs("datamon://sales/2024", exist_ok=True)  # exists: nothing to write
    assert [b.id for b in sales._store.repo("sales").bundles()] == [sales.id]


def test_a_transaction_makes_one_bundle_per_branch(sales, tmp_path):
    fs = fsspec.filesystem("datamon", message="tidy")
    (tmp_path / "local.txt").write_bytes(b"local")
    with fs.transaction:
        with fs.open("datamon://sales/a.txt", "wb") as f:
            f.write(b"A")
        fs.pipe("datamon://sales@main/b.txt", b"B")
        fs.put(str(tmp_path / "local.txt"), "datamon://sales/put/local.txt")
        fs.cp("datamon://sales/notes/readme.txt", "datamon://sales/copied.txt")
        fs.rm("datamon://sales/2024", recursive=True)
        fs.pipe("datamon://sales@scratch/only.txt", b"S")  # a new branch starts empty
        assert not fs.exists("datamon://sales/a.txt")  # nothing shows before the end
        with pytest.raises(FileExistsError):
            fs.open("datamon://sales/a.txt", "xb")
    main, scratch = sorted(fs.committed, key=lambda b: b.message == "tidy" and b.files)
    store = sales._store
    assert {b.id for b in fs.committed} == {store.bundle("sales").id,
                                            store.bundle("sales:scratch").id}
    got = {p: fs.cat(f"datamon://sales/{p}") for p in fs.find("datamon://sales")
           for p in [p.split("/", 1)[1]]}
    assert got == {"a.txt": b"A", "b.txt": b"B", "put/local.txt": b"local",
                   "copied.txt": b"0123456789", "notes/readme.txt": b"0123456789",
                   "tables/weather.parquet": got["tables/weather.parquet"]}
    assert fs.find("datamon://sales@scratch") == ["sales@scratch/only.txt"]
    with pytest.raises(RuntimeError):
        with fs.transaction:
            fs.pipe("datamon://sales/never.txt", b"N")
            raise RuntimeError("boom")
    assert not fs.exists("datamon://sales/never.txt") and fs.committed == []
    with pytest.raises(datamonfs.AlreadyExists, match="label"), fs.transaction:
        fs.pipe("datamon://sales@v1/x", b"")  # a label is no place to write
    with pytest.raises(datamonfs.InvalidName, match="ancestor"), fs.transaction:
        fs.pipe("datamon://sales@main~1/x", b"")


class TestDatamonGet(AbstractFixtures, AbstractGetTests):
    """fsspec's own tests of `get` (bundle to local disk), on a fresh store each. Its put,
    copy, pipe and open tests write outside a transaction, which datamon:// refuses by
    design (every write is a new bundle): the same operations are tested in transactions
    above. On the local store only (the tests above cover the emulator; these are many)."""

    @pytest.fixture
    def store_url(self, tmp_path):
        return "file://" + str(tmp_path / "store")

    @pytest.fixture
    def fs(self, env):
        store = datamonfs.open(create=True)
        store.create_repo("data")
        yield fsspec.filesystem("datamon")
        store.close()

    @pytest.fixture
    def fs_join(self):
        return posixpath.join

    @pytest.fixture
    def fs_path(self):
        return "data@main"

    @pytest.fixture
    def supports_empty_directories(self):
        return True

    def _scenario(self, fs, make, *args):
        with fs.transaction:
            source = make(fs, *args)
        return source

    @pytest.fixture
    def fs_bulk_operations_scenario_0(self, fs, fs_join, fs_path):
        return self._scenario(fs, self._bulk_operations_scenario_0, fs_join, fs_path)

    @pytest.fixture
    def fs_glob_edge_cases_files(self, fs, fs_join, fs_path):
        return self._scenario(fs, self._glob_edge_cases_files, fs_join, fs_path)

    @pytest.fixture
    def fs_dir_and_file_with_same_name_prefix(self, fs, fs_join, fs_path):
        return self._scenario(fs, self._dir_and_file_with_same_name_prefix, fs_join, fs_path)

    @pytest.fixture
    def fs_10_files_with_hashed_names(self, fs, fs_join, fs_path):
        return self._scenario(fs, self._10_files_with_hashed_names, fs_join, fs_path)

    @pytest.mark.skip(reason="writes in the test itself (mkdir, touch) outside a transaction, "
                             "which datamon:// refuses by design")
    def test_get_directory_recursive(self):
        pass
