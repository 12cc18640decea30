"""datamonfs: versioned datasets in an object store, mounted lazily through FUSE."""

__version__ = "0.1.0"
