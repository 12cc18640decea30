"""Errors as HTTP answers: a status, and a JSON body {"error": CODE, "message": TEXT}
(an HTML page for the web UI). Every failure a route can meet is mapped here."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import (AlreadyExists, DatamonError, IntegrityError, InvalidName, NotFound,
                      StoreUnavailable)
from .auth import Forbidden, Unauthorized
from .paths import BadPath

REALM = 'Bearer realm="datamonfs"'
STATUS = [(NotFound, 404), (AlreadyExists, 409), (InvalidName, 400), (StoreUnavailable, 503),
          (IntegrityError, 502), (DatamonError, 400)]


class BadRequest(DatamonError):
    """A query parameter or body the API does not take."""

    code = "bad_request"


def answer(request: Request, status: int, code: str, message: str,
           headers: dict | None = None) -> Response:
    message = " ".join(message.split())
    if request.url.path.startswith("/api/") or "text/html" not in request.headers.get(
            "accept", ""):
        return JSONResponse({"error": code, "message": message}, status, headers=headers)
    from .ui import render_error  # the web UI's page; import here: the UI imports routes

    return render_error(request, status, message, headers)


async def on_datamon_error(request: Request, e: Exception) -> Response:
    assert isinstance(e, DatamonError)
    status = next(s for cls, s in STATUS if isinstance(e, cls))
    return answer(request, status, e.code, str(e))


async def on_unauthorized(request: Request, e: Exception) -> Response:
    assert isinstance(e, Unauthorized)
    challenge = REALM
    if e.error:
        reason = str(e).replace('"', "'")
        challenge += f', error="{e.error}", error_description="{reason}"'
    return answer(request, 401, "unauthorized", str(e), {"WWW-Authenticate": challenge})


async def on_forbidden(request: Request, e: Exception) -> Response:
    assert isinstance(e, Forbidden)
    challenge = f'{REALM}, error="insufficient_scope", scope="{e.scope}"'
    return answer(request, 403, "forbidden", str(e), {"WWW-Authenticate": challenge})


async def on_bad_path(request: Request, e: Exception) -> Response:
    assert isinstance(e, BadPath)
    return answer(request, e.status, "bad_path", str(e))


async def on_http_error(request: Request, e: Exception) -> Response:
    """Starlette's own: no route (404), a method a route does not take (405)."""
    assert isinstance(e, HTTPException)
    return answer(request, e.status_code, f"http_{e.status_code}", str(e.detail), e.headers)


HANDLERS = {HTTPException: on_http_error, DatamonError: on_datamon_error, Unauthorized: on_unauthorized,
            Forbidden: on_forbidden, BadPath: on_bad_path}
