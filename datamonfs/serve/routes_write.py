"""The write routes: set a label; a new bundle on a branch from a tar stream or a
multipart form. Both need the token's write:REPO scope, and never take the cookie
(access.py): a browser cannot be made to write by another site.

Who a bundle or label is recorded as made by: the token's `name` and `email` claims
when it has both, else the server's config (its `name` and `email`).
"""

from __future__ import annotations

import json

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..core.names import check_name
from ..core.repository import Author
from ..errors import ConfigError
from . import params, uploads
from .access import require
from .auth import WRITE, Grant
from .blocking import run
from .engine import Engine
from .errors import BadRequest

MAX_JSON_BODY = 64 << 10
TAR_TYPES = ("application/x-tar", "application/tar")
_upload_limiter: anyio.CapacityLimiter | None = None
UPLOADS = 2  # uploads at once (each holds a worker thread while it lasts)


def author_of(request: Request, grant: Grant) -> Author:
    if grant.name and grant.email:
        return Author(grant.name, grant.email)
    author = request.app.state.author
    if author is None:
        raise ConfigError("this server has no author to record: run 'datamonfs config create' "
                          "or give tokens name and email claims")
    return author


async def set_label(request: Request) -> JSONResponse:
    repo = params.repo(request)
    grant = require(request, WRITE, repo)
    label = params.name(request, "label", "label name")
    body = await _json_body(request)
    ref = body.get("ref") if isinstance(body, dict) else None
    if not isinstance(ref, str) or not 0 < len(ref) <= 200:
        raise BadRequest('the body must be {"ref": "LABEL, BRANCH or BUNDLE ID"}')
    params.split_ref(f"{repo}:{ref}")
    e: Engine = request.app.state.engine
    before, moved, bundle = await run(e.set_label, repo, label, ref, author_of(request, grant))
    return JSONResponse({"label": label, "bundle": bundle.id, "before": before, "moved": moved})


async def _json_body(request: Request):
    data = b""
    async for piece in request.stream():
        data += piece
        if len(data) > MAX_JSON_BODY:
            raise BadRequest(f"the body is longer than {MAX_JSON_BODY} bytes")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not JSON") from None


async def create_bundle(request: Request) -> JSONResponse:
    global _upload_limiter
    repo = params.repo(request)
    grant = require(request, WRITE, repo)
    branch = params.name(request, "branch", "branch name")
    message = params.text(request, "message", 4096)
    if not message:
        raise BadRequest("message is missing: what this version is")
    label = params.text(request, "label", 100)
    if label is not None:
        check_name(label, "label name")
    replace = params.integer(request, "replace", 0, 0, 1) == 1
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in (*TAR_TYPES, "multipart/form-data"):
        raise BadRequest("send the files as application/x-tar or multipart/form-data")
    author = author_of(request, grant)
    e: Engine = request.app.state.engine
    if _upload_limiter is None:
        _upload_limiter = anyio.CapacityLimiter(UPLOADS)
    async with _upload_limiter:
        if kind in TAR_TYPES:
            bundle, created = await run(e.create_bundle, repo, branch, message, label, author,
                                        replace, uploads.put_tar,
                                        uploads.BlockingBody(request.stream()))
        else:
            form = await request.form(max_files=uploads.MAX_FILES, max_fields=100)
            try:
                bundle, created = await run(e.create_bundle, repo, branch, message, label,
                                            author, replace, uploads.put_form, form)
            finally:
                await form.close()
    return JSONResponse(bundle.to_json(), 201 if created else 200)


ROUTES = [
    Route("/api/v1/repos/{repo}/labels/{label}", set_label, methods=["PUT"]),
    Route("/api/v1/repos/{repo}/branches/{branch}/bundles", create_bundle, methods=["POST"]),
]
