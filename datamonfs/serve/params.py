"""Query parameters and URL parts, checked: the routes take nothing unchecked."""

from __future__ import annotations

import datetime

from starlette.requests import Request

from ..core.names import check_name, split_ref
from .errors import BadRequest
from .paths import bundle_path

DEFAULT_LIMIT = 100


def integer(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    value = int(text)
    if not low <= value <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    return value


def limit(request: Request, high: int) -> int:
    return integer(request, "limit", min(DEFAULT_LIMIT, high), 1, high)


def text(request: Request, name: str, max_len: int = 200) -> str | None:
    value = request.query_params.get(name)
    if value is not None and (len(value) > max_len or "\x00" in value):
        raise BadRequest(f"{name} is longer than {max_len} characters or holds a NUL")
    return value or None


def time_ns(request: Request, name: str) -> int | None:
    """An ISO 8601 date or time (UTC when no zone is given), as nanoseconds."""
    value = text(request, name, 40)
    if value is None:
        return None
    try:
        t = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 date or time, e.g. 2026-11-27T10:00:00Z"
                         ) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return int(t.timestamp() * 1e9)


def repo(request: Request) -> str:
    return check_name(request.path_params["repo"], "repo name")


def name(request: Request, key: str, what: str) -> str:
    return check_name(request.path_params[key], what)


def ref(request: Request, key: str = "ref") -> str:
    """A ref as the URL gives it: a label, branch, bundle id or prefix, with ~N."""
    value = request.path_params[key] if key in request.path_params else request.query_params.get(
        key)
    if not value:
        raise BadRequest(f"{key} is missing")
    split_ref(f"{repo(request)}:{value}")  # the grammar of REPO:REF~N, checked
    return value


def path(request: Request) -> str:
    return bundle_path(request.path_params.get("path", ""))
