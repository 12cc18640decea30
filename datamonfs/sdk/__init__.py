"""The Python API of datamonfs (docs/PYTHON.md), re-exported by the `datamonfs` package.

    import datamonfs
    store = datamonfs.open()
    b = store.bundle("sales:v1")
    with b.open("2024/q1.csv") as f: ...
    with store.repo("sales").new_bundle(message="cleaned", inputs=[b]) as nb:
        nb.write_bytes("clean.csv", data)

Modules: store.py (open, Store), repo.py (Repo, Ref, PathChange), bundle.py (Bundle),
files.py (FileInfo, BundleFile), writing.py (NewBundle; staging.py, its tree of changes),
lineage.py (Lineage), paths.py
(the one check of paths inside a bundle), filesystem.py (fsspec's `datamon://`).
The CLI is a layer over this API; so is `datamonfs serve`.
"""

from ..core.diff import Change
from ..core.model import Input, Process
from ..core.repository import Author
from .bundle import Bundle
from .files import BundleFile, FileInfo
from .lineage import Lineage
from .repo import PathChange, Ref, Repo
from .store import Store, open
from .writing import NewBundle, StagedFile

__all__ = ["Author", "Bundle", "BundleFile", "Change", "FileInfo", "Input", "Lineage",
           "NewBundle", "PathChange", "Process", "Ref", "Repo", "StagedFile", "Store", "open"]
