"""gs://BUCKET[/PREFIX]: a store in Google Cloud Storage.

Credentials come the usual Google way; with STORAGE_EMULATOR_HOST set the
client talks to that emulator anonymously. Content-addressed keys make every
write idempotent, so all calls are retried on transient errors, bounded by
DATAMONFS_STORE_TIMEOUT seconds (default 60).
"""

from __future__ import annotations

import os
import time
from typing import Iterator

from ...errors import KeyNotFound, StoreUnavailable
from .base import Store, check_key, store_timeout, time_left

CONNECT_TIMEOUT = 10.0


class GCSStore(Store):
    def __init__(self, bucket: str, prefix: str = ""):
        from google.api_core import exceptions as gexc
        from google.cloud import storage
        from google.cloud.storage.retry import _should_retry

        self._gexc = gexc
        self._transient = _should_retry
        self.url = f"gs://{bucket}/{prefix}".rstrip("/")
        self._prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.timeout = store_timeout()
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
        """fn(*args, retry=None, timeout=...), tried again on transient errors until the
        store timeout (or the caller's deadline, see base.deadline) runs out: each try
        may take only the time left, so the deadline holds however the store fails."""
        end = time.monotonic() + time_left(self.timeout)
        pause = 0.1
        while True:
            left = max(end - time.monotonic(), 0.05)
            try:
                return fn(*args, retry=None, timeout=(min(CONNECT_TIMEOUT, left), left), **kwargs)
            except self._gexc.NotFound:
                raise KeyNotFound(key) from None
            except self._gexc.PreconditionFailed:
                raise
            except Exception as e:
                if not self._transient(e):
                    raise StoreUnavailable(f"store {self.url} failed on {key}: {_one_line(e)}; "
                                           "check the bucket and its permissions") from e
                if time.monotonic() + pause >= end:
                    raise StoreUnavailable(f"store {self.url} did not answer on {key} within "
                                           f"{self.timeout:g}s (DATAMONFS_STORE_TIMEOUT): "
                                           f"{_one_line(e)}; check the network") from e
                time.sleep(pause)
                pause = min(pause * 2, 5.0)

    def get(self, key: str) -> bytes:
        blob = self._blob(key)
        return self._call(key, blob.download_as_bytes, checksum=None)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Bytes [start, start + length) of a key, fewer past its end (as a file's pread)."""
        if length <= 0:
            return b""
        blob = self._blob(key)
        try:
            return self._call(key, blob.download_as_bytes, start=start, end=start + length - 1,
                              checksum=None)
        except StoreUnavailable as e:  # 416: the range starts past the end
            if isinstance(e.__cause__, self._gexc.RequestRangeNotSatisfiable):
                return b""
            raise

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
        token = None
        while True:
            try:
                names, token = self._call(f"listing {prefix}", self._list_page, full, token)
            except KeyNotFound:
                raise StoreUnavailable(f"bucket of {self.url} does not exist; create it "
                                       "first") from None
            for name in names:
                yield name[len(self._prefix):]
            if not token:
                return

    def _list_page(self, full: str, token: str | None, retry, timeout) -> tuple[list[str], str | None]:
        it = self._client.list_blobs(self._bucket, prefix=full, page_token=token, retry=retry,
                                     timeout=timeout)
        page = next(it.pages, None)
        return ([b.name for b in page] if page is not None else []), it.next_page_token

    def delete(self, key: str) -> None:
        blob = self._blob(key)
        self._call(key, blob.delete)

    def close(self) -> None:
        self._client.close()


def _one_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
