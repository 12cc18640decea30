"""The ASGI application: the JSON API under /api/v1, its OpenAPI document, the web UI.

    app = create_app(engine, verifier)   # verifier None: no authentication (loopback only)

Every request first passes `PathGuard` (paths.py: the one check of raw URL paths);
every failure becomes an answer in errors.py.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from . import errors, openapi, routes_api, routes_files, routes_write, ui
from .auth import Verifier
from .engine import Engine
from .paths import BadPath, check_raw_path

SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY")]


class PathGuard:
    """Refuses a request whose raw path paths.check_raw_path refuses, before routing;
    adds headers every answer carries."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        raw = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
        try:
            check_raw_path(raw.split(b"?", 1)[0])
        except BadPath as e:
            response = JSONResponse({"error": "bad_path", "message": str(e)}, e.status)
            return await response(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    h for h in SECURITY_HEADERS if h[0] not in have]
            await send(message)

        return await self.app(scope, receive, send_with_headers)


async def openapi_document(request) -> JSONResponse:
    return JSONResponse(openapi.document())


def create_app(engine: Engine, verifier: Verifier | None, author=None) -> Starlette:
    """`author` (a core Author) names who made bundles and labels when the token names
    nobody (see routes_write)."""
    routes = [Route("/api/v1/openapi.json", openapi_document), *routes_api.ROUTES,
              *routes_files.ROUTES, *routes_write.ROUTES, *ui.ROUTES,
              Mount("/static", StaticFiles(directory=ui.STATIC), name="static")]
    app = Starlette(routes=routes, exception_handlers=errors.HANDLERS)
    app.state.engine = engine
    app.state.verifier = verifier
    app.state.author = author
    return PathGuard(app)
