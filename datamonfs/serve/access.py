"""Who a request is, from its token: the one place routes ask.

A token comes in `Authorization: Bearer TOKEN`, or, for GET and HEAD only, in the
`datamonfs_token` cookie the web UI sets from its token field (SameSite=Strict; writes
never take the cookie, so another site cannot make a browser write). A token in the
URL's query is not taken: URLs end up in logs.
"""

from __future__ import annotations

from starlette.requests import Request

from .auth import OPEN, Grant, Unauthorized, Verifier

TOKEN_COOKIE = "datamonfs_token"
SAFE_METHODS = ("GET", "HEAD")


def token_of(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be 'Bearer TOKEN'")
        return token.strip()
    if request.method in SAFE_METHODS:
        return request.cookies.get(TOKEN_COOKIE) or None
    return None


def grant_of(request: Request) -> Grant:
    """The request's grant, checked once per request; OPEN when the server runs
    without authentication (--auth none, loopback only)."""
    cached = getattr(request.state, "grant", None)
    if cached is not None:
        return cached
    verifier: Verifier | None = request.app.state.verifier
    if verifier is None:
        grant = OPEN
    else:
        token = token_of(request)
        if token is None:
            raise Unauthorized("this server needs a token (Authorization: Bearer TOKEN)",
                               error=None)
        grant = verifier.verify(token)
    request.state.grant = grant
    return grant


def require(request: Request, action: str, repo: str) -> Grant:
    grant = grant_of(request)
    grant.require(action, repo)
    return grant
