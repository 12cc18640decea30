"""gs://BUCKET[/PREFIX]: a store in Google Cloud Storage.

Credentials come the usual Google way; with STORAGE_EMULATOR_HOST set the
client talks to that emulator anonymously. Content-addressed keys make every
write idempotent, so all calls are retried on transient errors, bounded by
DATAMONFS_STORE_TIMEOUT seconds (default 60).
"""

from __future__ import annotations

import os
from typing import Iterator

from ...errors import KeyNotFound, StoreUnavailable
from .base import Store, check_key


def _timeout() -> float:
    return float(os.environ.get("DATAMONFS_STORE_TIMEOUT", "60"))


class GCSStore(Store):
    def __init__(self, bucket: str, prefix: str = ""):
        from google.api_core import exceptions as gexc
        from google.cloud import storage
        from google.cloud.storage.retry import DEFAULT_RETRY

        self._gexc = gexc
        self.url = f"gs://{bucket}/{prefix}".rstrip("/")
        self._prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        deadline = _timeout()
        self._retry = DEFAULT_RETRY.with_timeout(deadline)
        self._timeout = (min(10.0, deadline), max(deadline, 1.0))
        try:
            if os.environ.get("STORAGE_EMULATOR_HOST"):
                from google.auth.credentials import AnonymousCredentials

                client = storage.Client(project="datamonfs", credentials=AnonymousCredentials())
            else:
                client = storage.Client()
        except Exception as e:  # google.auth raises several unrelated types
            raise StoreUnavailable(f"cannot open {self.url}: {e}; "
                                   "set up Google credentials (gcloud auth application-default login)") from e
        self._client = client
        self._bucket = client.bucket(bucket)

    def _blob(self, key: str):
        return self._bucket.blob(self._prefix + check_key(key))

    def _call(self, key: str, fn, *args, **kwargs):
        try:
            return fn(*args, retry=self._retry, timeout=self._timeout, **kwargs)
        except self._gexc.NotFound:
            raise KeyNotFound(key) from None
        except self._gexc.PreconditionFailed:
            raise
        except Exception as e:
            raise StoreUnavailable(f"store {self.url} failed on {key}: {_one_line(e)}; "
                                   "check the network and the bucket") from e

    def get(self, key: str) -> bytes:
        blob = self._blob(key)
        return self._call(key, blob.download_as_bytes, checksum=None)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        if length <= 0:
            return b""
        blob = self._blob(key)
        return self._call(key, blob.download_as_bytes, start=start, end=start + length - 1, checksum=None)

    def put(self, key: str, data: bytes) -> None:
        blob = self._blob(key)
        self._call(key, blob.upload_from_string, data, content_type="application/octet-stream")

    def put_if_absent(self, key: str, data: bytes) -> bool:
        # The precondition is advisory on the emulator; callers never depend on it
        # for correctness (content-addressed objects, append-only ref logs).
        if self.exists(key):
            return False
        blob = self._blob(key)
        try:
            self._call(key, blob.upload_from_string, data, if_generation_match=0,
                       content_type="application/octet-stream")
        except self._gexc.PreconditionFailed:
            return False
        return True

    def exists(self, key: str) -> bool:
        blob = self._blob(key)
        return self._call(key, blob.exists)

    def list(self, prefix: str) -> Iterator[str]:
        full = self._prefix + prefix
        try:
            for blob in self._client.list_blobs(self._bucket, prefix=full, retry=self._retry,
                                                timeout=self._timeout):
                yield blob.name[len(self._prefix):]
        except self._gexc.NotFound:
            raise StoreUnavailable(f"bucket of {self.url} does not exist; create it first") from None
        except Exception as e:
            raise StoreUnavailable(f"store {self.url} failed listing {prefix}: {_one_line(e)}") from e

    def delete(self, key: str) -> None:
        blob = self._blob(key)
        self._call(key, blob.delete)

    def close(self) -> None:
        self._client.close()


def _one_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
