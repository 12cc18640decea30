"""datamonfs: versioned datasets in an object store, mounted lazily through FUSE.

The Python API (docs/PYTHON.md) is this package's top level:

    import datamonfs
    store = datamonfs.open()                         # the config's store
    df = pandas.read_csv(store.bundle("sales:v1").open("q1.csv"))

and `datamon://REPO@REF/PATH` URLs work wherever fsspec does (pandas, pyarrow, dask).
"""

__version__ = "0.1.0"

import importlib  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

from . import errors  # noqa: E402
from .errors import (AlreadyExists, AmbiguousRef, DatamonError, IntegrityError,  # noqa: E402
                     InvalidName, InvalidPath, IsADirectory, NotADirectory, NotFound,
                     PathNotFound, StoreUnavailable)

# The API's classes come from .sdk when first asked for (PEP 562): every `datamonfs` command
# imports this package, and most need neither the whole API nor what it imports.
_FROM_SDK = ("Author", "Bundle", "BundleFile", "Change", "FileInfo", "Input", "Lineage",
             "NewBundle", "PathChange", "Process", "Ref", "Repo", "StagedFile", "Store", "open")
if TYPE_CHECKING:
    from .sdk import (Author, Bundle, BundleFile, Change, FileInfo, Input, Lineage, NewBundle,
                      PathChange, Process, Ref, Repo, StagedFile, Store, open)


def __getattr__(name: str):
    if name in _FROM_SDK:
        return getattr(importlib.import_module(".sdk", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_FROM_SDK})


__all__ = ["AlreadyExists", "AmbiguousRef", "Author", "Bundle", "BundleFile", "Change",
           "DatamonError", "FileInfo", "Input", "IntegrityError", "InvalidName", "InvalidPath",
           "IsADirectory", "Lineage", "NewBundle", "NotADirectory", "NotFound", "PathChange",
           "PathNotFound", "Process", "Ref", "Repo", "StagedFile", "Store", "StoreUnavailable",
           "errors", "open"]
