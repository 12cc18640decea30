"""gs://BUCKET[/PREFIX]: a store in Google Cloud Storage.

Credentials: a credentials JSON file (a service account's key, or application-default
credentials) when the config names one (`credential`), else Google's usual chain
(GOOGLE_APPLICATION_CREDENTIALS, gcloud's application-default login, or in Kubernetes
and on GCE the node's or pod's service account). With STORAGE_EMULATOR_HOST set the
client talks to that emulator anonymously. Content-addressed keys make every write
idempotent, so all calls are retried on transient errors, bounded by the store timeout
(DATAMONFS_STORE_TIMEOUT, default 60 s); a refused connection is given up after a
few seconds. Every failure is one line naming the store.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from ...errors import ConfigError, KeyNotFound, StoreUnavailable
from .base import Store, check_key, store_timeout, time_left

CONNECT_TIMEOUT = 10.0
REFUSED_GRACE = 2.0  # a refused connection is retried this long (an endpoint restarting)
NOTICE_AFTER = 2.0  # a store slower than this is reported as retrying (log warning)
CREDENTIAL_TYPES = ("service_account", "authorized_user", "external_account",
                    "impersonated_service_account", "external_account_authorized_user")

log = logging.getLogger("datamonfs.store")
log.addHandler(logging.NullHandler())  # shown where a program says (the CLI: on a terminal)


def load_credentials(path: str):
    """The credentials in a JSON file (a service account's key or application-default
    credentials); a one-line ConfigError when it is missing, unreadable or of another kind."""
    try:
        with open(path, "rb") as f:
            info = json.loads(f.read(1 << 20))
    except OSError as e:
        raise ConfigError(f"cannot read credential file {path}: {e.strerror or e}") from None
    except ValueError:
        raise ConfigError(f"credential file {path} is not JSON; give a service account key or "
                          "application-default credentials file") from None
    kind = info.get("type") if isinstance(info, dict) else None
    if kind not in CREDENTIAL_TYPES:
        raise ConfigError(f"credential file {path} is not a Google credentials file (type "
                          f"{kind!r:.40}); give a service account key or application-default "
                          "credentials file")
    import google.auth

    try:
        credentials, project = google.auth.load_credentials_from_file(
            path, scopes=["https://www.googleapis.com/auth/devstorage.read_write"])
    except Exception as e:  # google.auth raises several unrelated types
        raise ConfigError(f"credential file {path} cannot be used: {_one_line(e)}") from None
    return credentials, project


class GCSStore(Store):
    def __init__(self, bucket: str, prefix: str = "", credential: str = "",
                 timeout: float | None = None):
        from google.api_core import exceptions as gexc
        from google.cloud import storage
        from google.cloud.storage.retry import _should_retry

        self._gexc = gexc
        self._transient = _should_retry
        self.bucket_name = bucket
        self.url = f"gs://{bucket}/{prefix}".rstrip("/")
        self._prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.timeout = store_timeout() if timeout is None else timeout
        self._bucket_exists = False  # checked once, on the first key found missing
        self._slow = SlowCalls(self.url, self.timeout)
        try:
            if os.environ.get("STORAGE_EMULATOR_HOST"):
                from google.auth.credentials import AnonymousCredentials

                client = storage.Client(project="datamonfs", credentials=AnonymousCredentials())
            elif credential:
                credentials, project = load_credentials(credential)
                client = storage.Client(project=project or "datamonfs", credentials=credentials)
            else:
                client = storage.Client()
        except ConfigError:
            raise
        except Exception as e:  # google.auth raises several unrelated types
            raise StoreUnavailable(f"cannot open {self.url}: {_one_line(e)}; set up Google "
                                   "credentials ('gcloud auth application-default login', or "
                                   "'datamonfs config set credential FILE')") from e
        self._client = client
        self._bucket = client.bucket(bucket)

    def _blob(self, key: str):
        return self._bucket.blob(self._prefix + check_key(key))

    def _call(self, key: str, fn, *args, **kwargs):
        """fn(*args, retry=None, timeout=...), tried again on transient errors until the
        store timeout (or the caller's deadline, see base.deadline) runs out: each try
        may take only the time left, so the deadline holds however the store fails."""
        start = time.monotonic()
        end = start + time_left(self.timeout)
        pause = 0.1
        while True:
            left = max(end - time.monotonic(), 0.05)
            try:
                with self._slow.running():
                    return fn(*args, retry=None, timeout=(min(CONNECT_TIMEOUT, left), left),
                              **kwargs)
            except self._gexc.NotFound:
                raise self._missing(key) from None
            except (self._gexc.PreconditionFailed, self._gexc.RequestRangeNotSatisfiable):
                raise  # answers, for put_if_absent and get_range
            except Exception as e:
                if not self._transient(e):
                    raise StoreUnavailable(f"store {self.url} failed on {key}: {_one_line(e)}; "
                                           "check the bucket and its permissions") from None
                cause = _cause(e)
                now = time.monotonic()
                if cause.startswith("connection refused") and now - start >= REFUSED_GRACE:
                    raise StoreUnavailable(f"store {self.url} cannot be reached: {cause}; check "
                                           "the network (or STORAGE_EMULATOR_HOST)") from None
                if now + pause >= end:
                    raise StoreUnavailable(
                        f"store {self.url} did not answer within {self.timeout:g}s "
                        f"(DATAMONFS_STORE_TIMEOUT): {cause}; check the network") from None
                with self._slow.running():
                    time.sleep(pause)
                pause = min(pause * 2, 5.0)

    def _missing(self, key: str) -> Exception:
        """A key found missing: KeyNotFound, unless the bucket itself is missing (asked once)."""
        if not self._bucket_exists:
            exists = self._call("the bucket", self._bucket.exists)
            if not exists:
                return StoreUnavailable(
                    f"bucket {self.bucket_name!r} of store {self.url} does not exist; create it "
                    f"('gcloud storage buckets create gs://{self.bucket_name}') or fix the store "
                    "URL")
            self._bucket_exists = True
        return KeyNotFound(key)

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
        except self._gexc.RequestRangeNotSatisfiable:  # 416: the range starts past the end
            return b""

    def put(self, key: str, data: bytes | memoryview) -> None:
        blob = self._blob(key)
        if not isinstance(data, bytes):  # a pack's buffer (the client takes bytes only)
            data = bytes(data)
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
        if self._call(key, blob.exists):
            return True
        if not self._bucket_exists:
            missing = self._missing(key)
            if isinstance(missing, StoreUnavailable):
                raise missing
        return False

    def list(self, prefix: str) -> Iterator[str]:
        full = self._prefix + prefix
        token = None
        while True:
            names, token = self._call(f"listing {prefix}", self._list_page, full, token)
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

    def check(self) -> None:
        """Raise unless the bucket exists and answers (config create)."""
        if not self._call("the bucket", self._bucket.exists):
            raise self._missing("the bucket")

    def close(self) -> None:
        self._client.close()


class SlowCalls:
    """Says (a log warning, which the CLI shows on a terminal) when a store call has gone
    on for NOTICE_AFTER seconds: a hung store blocks one try for the whole timeout, so
    the try itself cannot. One watcher thread per store, only while calls run."""

    def __init__(self, url: str, timeout: float):
        self.url, self.timeout = url, timeout
        self.lock = threading.Lock()
        self.running_since: dict[int, float] = {}
        self.watching = self.noticed = False

    @contextmanager
    def running(self):
        key = threading.get_ident()
        with self.lock:
            self.running_since.setdefault(key, time.monotonic())
            if not self.watching:
                self.watching = True
                threading.Thread(target=self._watch, daemon=True, name="store-watch").start()
        try:
            yield
        finally:
            with self.lock:
                self.running_since.pop(key, None)

    def _watch(self) -> None:
        while True:
            time.sleep(0.25)
            with self.lock:
                if not self.running_since:
                    self.watching = self.noticed = False
                    return
                oldest = min(self.running_since.values())
                notice = not self.noticed and time.monotonic() - oldest >= NOTICE_AFTER
                self.noticed = self.noticed or notice
            if notice:
                log.warning("store %s is not answering; retrying for up to %gs "
                            "(DATAMONFS_STORE_TIMEOUT)", self.url, self.timeout)


_ERRNO_TEXT = {errno.ECONNREFUSED: "connection refused", errno.ETIMEDOUT: "timed out",
               errno.EHOSTUNREACH: "host unreachable", errno.ENETUNREACH: "network unreachable",
               errno.ECONNRESET: "connection reset"}


def _cause(e: BaseException) -> str:
    """A short cause for a transient failure, from the innermost error that says one
    (urllib3 wraps a refused connection three times, in ~400 characters)."""
    seen, todo = set(), [e]
    while todo:
        err = todo.pop()
        if id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in _ERRNO_TEXT:
            return _ERRNO_TEXT[err.errno]
        if "timed out" in str(err).lower() or "timeout" in type(err).__name__.lower():
            return "timed out"
        if "Name or service not known" in str(err) or "Temporary failure in name" in str(err):
            return "the host name does not resolve"
        todo += [x for x in (err.__cause__, err.__context__, getattr(err, "reason", None),
                             *err.args) if isinstance(x, BaseException)]
    text = str(e)
    if "Connection refused" in text:
        return "connection refused"
    return _one_line(e)[:120]


def _one_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
