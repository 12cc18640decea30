"""Store URLs: file://PATH (or a plain path) and gs://BUCKET[/PREFIX]."""

from __future__ import annotations

from ...errors import ConfigError
from .base import Store


def open_store(url: str) -> Store:
    if url.startswith("gs://"):
        from .gcs import GCSStore

        bucket, _, prefix = url[len("gs://"):].partition("/")
        if not bucket:
            raise ConfigError(f"store URL {url!r} names no bucket; use gs://BUCKET[/PREFIX]")
        return GCSStore(bucket, prefix)
    if url.startswith("file://"):
        path = url[len("file://"):]
    elif "://" in url:
        raise ConfigError(f"unsupported store URL {url!r}; use file://PATH or gs://BUCKET[/PREFIX]")
    else:
        path = url
    if not path:
        raise ConfigError("store URL names no directory; use file:///absolute/path")
    from .local import LocalStore

    return LocalStore(path)


__all__ = ["Store", "open_store"]
