"""datamonfs: versioned datasets in an object store, mounted lazily through FUSE.

The Python API (docs/PYTHON.md) is this package's top level:

    import datamonfs
    store = datamonfs.open()                         # the config's store
    df = pandas.read_csv(store.bundle("sales:v1").open("q1.csv"))

and `datamon://REPO@REF/PATH` URLs work wherever fsspec does (pandas, pyarrow, dask).
"""

__version__ = "0.1.0"

from . import errors  # noqa: E402
from .errors import (AlreadyExists, AmbiguousRef, DatamonError, IntegrityError,  # noqa: E402
                     InvalidName, InvalidPath, IsADirectory, NotADirectory, NotFound,
                     PathNotFound, StoreUnavailable)
from .sdk import (Author, Bundle, BundleFile, Change, FileInfo, Input, Lineage,  # noqa: E402
                  NewBundle, PathChange, Process, Ref, Repo, StagedFile, Store, open)

__all__ = ["AlreadyExists", "AmbiguousRef", "Author", "Bundle", "BundleFile", "Change",
           "DatamonError", "FileInfo", "Input", "IntegrityError", "InvalidName", "InvalidPath",
           "IsADirectory", "Lineage", "NewBundle", "NotADirectory", "NotFound", "PathChange",
           "PathNotFound", "Process", "Ref", "Repo", "StagedFile", "Store", "StoreUnavailable",
           "errors", "open"]
