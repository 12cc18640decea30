"""The read routes of the JSON API (docs/openapi.json describes every one)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..core.model import FILE
from ..core.repository import BRANCH, LABEL
from . import params
from .access import grant_of, require
from .auth import READ
from .blocking import run
from .engine import MAX_PAGE, Engine, content_address
from .views import bundle_json, entry_json, ref_json, repo_json


def engine(request: Request) -> Engine:
    return request.app.state.engine


async def list_repos(request: Request) -> JSONResponse:
    """Every repo the token may read."""
    grant = grant_of(request)
    repos = await run(engine(request).repos)
    return JSONResponse({"repos": [repo_json(r) for r in repos if grant.allows(READ, r.name)]})


async def get_repo(request: Request) -> JSONResponse:
    repo = params.repo(request)
    require(request, READ, repo)
    return JSONResponse(repo_json(await run(engine(request).get_repo, repo)))


def bundle_filters(request: Request) -> dict:
    return {"branch": params.text(request, "branch", 100), "author": params.text(request, "author"),
            "grep": params.text(request, "grep"), "since": params.time_ns(request, "since"),
            "until": params.time_ns(request, "until")}


async def list_bundles(request: Request) -> JSONResponse:
    """Newest first; filters: branch, author (in name or email), grep (in the message),
    since and until (ISO 8601); offset and limit."""
    repo = params.repo(request)
    require(request, READ, repo)
    filters = bundle_filters(request)
    if filters["branch"] is not None:
        params.check_name(filters["branch"], "branch name")
    offset = params.integer(request, "offset", 0, 0, 10**9)
    limit = params.limit(request, MAX_PAGE)
    page, names = await run(_bundles_page, engine(request), repo, offset, limit, filters)
    return JSONResponse({"bundles": [bundle_json(b, names.get(b.id, {})) for b in page.items],
                         "total": page.total, "next_offset": int(page.next) if page.next else None})


def _bundles_page(e: Engine, repo: str, offset: int, limit: int, filters: dict):
    return e.bundles(repo, offset=offset, limit=limit, **filters), e.decorations(repo)


async def get_bundle(request: Request) -> JSONResponse:
    repo = params.repo(request)
    require(request, READ, repo)
    bundle = await run(engine(request).resolve, repo, params.ref(request))
    names = await run(engine(request).decorations, repo)
    return JSONResponse(bundle_json(bundle, names.get(bundle.id, {})))


async def tree(request: Request) -> JSONResponse:
    """What is at a path of a bundle: a file's or link's entry, or a directory's entry
    and a page of its entries (after=NAME, limit)."""
    repo = params.repo(request)
    require(request, READ, repo)
    ref, path = params.ref(request), params.path(request)
    after = params.text(request, "after", 1024)
    limit = params.limit(request, MAX_PAGE)
    doc = await run(_tree, engine(request), repo, ref, path, after, limit)
    return JSONResponse(doc)


def _tree(e: Engine, repo: str, ref: str, path: str, after: str | None, limit: int) -> dict:
    bundle = e.resolve(repo, ref)
    entry = e.entry(bundle, path)
    address = content_address(entry) if entry.kind == FILE else None
    doc = {"bundle": bundle.id, "entry": entry_json(entry, path, address)}
    if entry.kind == "dir":
        page = e.listdir(bundle, path, after, limit)
        prefix = f"{path}/" if path else ""
        doc["entries"] = [entry_json(c, prefix + c.name, content_address(c)
                                     if c.kind == FILE else None) for c in page.items]
        doc["total"] = page.total
        doc["next_after"] = page.next
    return doc


async def diff(request: Request) -> JSONResponse:
    """Changes from bundle `from` to bundle `to` in path order; offset and limit."""
    repo = params.repo(request)
    require(request, READ, repo)
    old, new = params.ref(request, "from"), params.ref(request, "to")
    offset = params.integer(request, "offset", 0, 0, 10**9)
    limit = params.limit(request, MAX_PAGE)
    return JSONResponse(await run(_diff, engine(request), repo, old, new, offset, limit))


def _diff(e: Engine, repo: str, old: str, new: str, offset: int, limit: int) -> dict:
    a, b = e.resolve(repo, old), e.resolve(repo, new)
    changes, more = [], False
    for i, change in enumerate(e.diff(a, b)):
        if i >= offset + limit:
            more = True
            break
        if i >= offset:
            changes.append(change.to_json())
    return {"from": a.id, "to": b.id, "changes": changes,
            "next_offset": offset + limit if more else None}


async def list_refs(request: Request) -> JSONResponse:
    repo = params.repo(request)
    require(request, READ, repo)
    kind = LABEL if request.url.path.endswith("/labels") else BRANCH
    refs = await run(engine(request).refs, repo, kind)
    return JSONResponse({"labels" if kind == LABEL else "branches": [ref_json(r) for r in refs]})


ROUTES = [
    Route("/api/v1/repos", list_repos),
    Route("/api/v1/repos/{repo}", get_repo),
    Route("/api/v1/repos/{repo}/bundles", list_bundles),
    Route("/api/v1/repos/{repo}/refs/{ref}", get_bundle),
    Route("/api/v1/repos/{repo}/refs/{ref}/tree", tree),
    Route("/api/v1/repos/{repo}/refs/{ref}/tree/{path:path}", tree),
    Route("/api/v1/repos/{repo}/diff", diff),
    Route("/api/v1/repos/{repo}/labels", list_refs),
    Route("/api/v1/repos/{repo}/branches", list_refs),
]
