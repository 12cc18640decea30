"""Store URLs (file://PATH, a plain path, gs://BUCKET[/PREFIX]) and what opening one needs.

A StoreSpec is everything a process needs to open a store the same way the CLI
does: the URL (local paths always absolute, so no process's working directory
matters), the GCS credentials file, the emulator host and the store timeout.
The CLI sends it with every daemon request that opens a store (docs/PROTOCOL.md).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from ...errors import ConfigError
from .base import Store, store_timeout


def absolute_url(url: str, base: str | None = None) -> str:
    """The URL with a local path made absolute (against `base`, default the working
    directory): `relstore` and `file://relstore` become `file:///cwd/relstore`."""
    if url.startswith("gs://") or ("://" in url and not url.startswith("file://")):
        return url
    path = url[len("file://"):] if url.startswith("file://") else url
    if not path:
        raise ConfigError("store URL names no directory; use file:///absolute/path")
    return "file://" + os.path.abspath(os.path.join(base or os.getcwd(), os.path.expanduser(path)))


@dataclass(frozen=True)
class StoreSpec:
    url: str
    credential: str = ""  # a GCS credentials JSON file; "": Google's default chain
    emulator_host: str = ""  # STORAGE_EMULATOR_HOST: a GCS emulator, anonymous access
    timeout: float = 60.0  # DATAMONFS_STORE_TIMEOUT

    @classmethod
    def from_environment(cls, url: str, credential: str = "") -> "StoreSpec":
        return cls(absolute_url(url), credential, os.environ.get("STORAGE_EMULATOR_HOST", ""),
                   store_timeout())

    def to_json(self) -> dict:
        return {"url": self.url, "credential": self.credential,
                "emulator_host": self.emulator_host, "timeout": self.timeout}

    @classmethod
    def from_json(cls, obj: object) -> "StoreSpec":
        """From a request (untrusted): every field checked; ConfigError naming the field."""
        if not isinstance(obj, dict) or not isinstance(obj.get("url"), str):
            raise ConfigError("field 'store' needs a 'url'")
        fields = {"url": obj["url"]}
        for name in ("credential", "emulator_host"):
            value = obj.get(name, "")
            if not isinstance(value, str) or "\0" in value or len(value) > 4096:
                raise ConfigError(f"field 'store.{name}' must be a string")
            fields[name] = value
        timeout = obj.get("timeout", 60.0)
        if (not isinstance(timeout, (int, float)) or isinstance(timeout, bool)
                or not math.isfinite(timeout) or not 0.1 <= timeout <= 86400):
            raise ConfigError("field 'store.timeout' must be seconds between 0.1 and 86400")
        if fields["credential"] and not os.path.isabs(fields["credential"]):
            raise ConfigError("field 'store.credential' must be an absolute path")
        url = fields["url"]
        if not url.startswith("gs://") and absolute_url(url, "/") != url:
            raise ConfigError("field 'store.url' must be gs://... or file:///absolute/path")
        return cls(url, fields["credential"], fields["emulator_host"], float(timeout))

    def environment(self) -> dict[str, str]:
        """The variables a process serving only this store runs with (a mount worker)."""
        env = {"DATAMONFS_STORE_TIMEOUT": f"{self.timeout:g}"}
        if self.emulator_host:
            env["STORAGE_EMULATOR_HOST"] = self.emulator_host
        return env


def open_store(spec: StoreSpec | str, create: bool = True) -> Store:
    """Open a store. A missing local store's directory is made with `create`; without it
    (the CLI's commands that only read) it is a StoreUnavailable saying it does not exist."""
    if isinstance(spec, str):
        spec = StoreSpec.from_environment(spec)
    url = spec.url
    if url.startswith("gs://"):
        from .gcs import GCSStore

        bucket, _, prefix = url[len("gs://"):].partition("/")
        if not bucket:
            raise ConfigError(f"store URL {url!r} names no bucket; use gs://BUCKET[/PREFIX]")
        return GCSStore(bucket, prefix, credential=spec.credential, timeout=spec.timeout)
    if "://" in url and not url.startswith("file://"):
        raise ConfigError(f"unsupported store URL {url!r}; use file://PATH or gs://BUCKET[/PREFIX]")
    from .local import LocalStore

    return LocalStore(absolute_url(url)[len("file://"):], create=create)


__all__ = ["Store", "StoreSpec", "absolute_url", "open_store"]
