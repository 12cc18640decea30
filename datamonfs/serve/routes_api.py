"""The read routes of the JSON API (docs/openapi.json describes every one)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..core.repository import BRANCH, LABEL
from . import params
from .access import grant_of, require
from .auth import READ
from .blocking import run
from .engine import MAX_PAGE, Engine
from .views import bundle_json


def engine(request: Request) -> Engine:
    return request.app.state.engine


async def list_repos(request: Request) -> JSONResponse:
    """Every repo the token may read."""
    grant = grant_of(request)
    repos = await run(engine(request).repos)
    return JSONResponse({"repos": [r.to_json() for r in repos if grant.allows(READ, r.name)]})


async def get_repo(request: Request) -> JSONResponse:
    repo = params.repo(request)
    require(request, READ, repo)
    return JSONResponse((await run(engine(request).repo, repo)).to_json())


def bundle_filters(request: Request) -> dict:
    return {"branch": params.text(request, "branch", 100), "label": params.text(request, "label", 100),
            "author": params.text(request, "author"),
            "grep": params.text(request, "grep"), "since": params.time_ns(request, "since"),
            "until": params.time_ns(request, "until")}


async def list_bundles(request: Request) -> JSONResponse:
    """Newest first; filters: branch, author (in name or email), grep (in the message),
    since and until (ISO 8601); offset and limit."""
    repo = params.repo(request)
    require(request, READ, repo)
    filters = bundle_filters(request)
    offset = params.integer(request, "offset", 0, 0, 10**9)
    limit = params.limit(request, MAX_PAGE)
    page, names = await run(_bundles_page, engine(request), repo, offset, limit, filters)
    return JSONResponse({"bundles": [bundle_json(b, names) for b in page.items],
                         "next_offset": int(page.next) if page.next else None})


def _bundles_page(e: Engine, repo: str, offset: int, limit: int, filters: dict):
    return e.bundles(repo, offset, limit, **filters), e.decorations(repo)


async def get_bundle(request: Request) -> JSONResponse:
    repo = params.repo(request)
    require(request, READ, repo)
    bundle = await run(engine(request).bundle, repo, params.ref(request))
    names = await run(engine(request).decorations, repo)
    return JSONResponse(bundle_json(bundle, names))


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
    bundle = e.bundle(repo, ref)
    info = bundle.stat(path)
    doc = {"bundle": bundle.id, "entry": info.to_json()}
    if info.is_dir:
        page = e.listdir(bundle, path, after, limit)
        doc.update(entries=[i.to_json() for i in page.items], total=page.total,
                   next_after=page.next)
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
    a, b = e.bundle(repo, old), e.bundle(repo, new)
    page = e.diff(a, b, offset, limit)
    return {"from": a.id, "to": b.id, "changes": [c.to_json() for c in page.items],
            "next_offset": int(page.next) if page.next else None}


async def lineage(request: Request) -> JSONResponse:
    """What a bundle was made from and what was made from it, `depth` generations each
    way (default all); bundles of repos the token may not read are left out."""
    repo = params.repo(request)
    grant = require(request, READ, repo)
    depth = params.integer(request, "depth", 0, 1, 100) or None
    doc = await run(_lineage, engine(request), repo, params.ref(request), depth)
    return JSONResponse(visible_lineage(doc, grant))


def _lineage(e: Engine, repo: str, ref: str, depth: int | None) -> dict:
    return e.lineage(e.bundle(repo, ref), depth).to_json()


def visible_lineage(doc: dict, grant) -> dict:
    """A lineage document without the bundles and edges of repos `grant` may not read."""
    ok = lambda ref: grant.allows(READ, ref.split(":", 1)[0])  # noqa: E731
    return {**doc, "bundles": [b for b in doc["bundles"] if grant.allows(READ, b["repo"])],
            "edges": [x for x in doc["edges"] if ok(x["input"]) and ok(x["output"])],
            "missing": [m for m in doc["missing"] if ok(m)]}


async def list_refs(request: Request) -> JSONResponse:
    repo = params.repo(request)
    require(request, READ, repo)
    kind = LABEL if request.url.path.endswith("/labels") else BRANCH
    refs = await run(engine(request).refs, repo, kind)
    return JSONResponse({"labels" if kind == LABEL else "branches": [r.to_json() for r in refs]})


ROUTES = [
    Route("/api/v1/repos", list_repos),
    Route("/api/v1/repos/{repo}", get_repo),
    Route("/api/v1/repos/{repo}/bundles", list_bundles),
    Route("/api/v1/repos/{repo}/refs/{ref}", get_bundle),
    Route("/api/v1/repos/{repo}/refs/{ref}/tree", tree),
    Route("/api/v1/repos/{repo}/refs/{ref}/tree/{path:path}", tree),
    Route("/api/v1/repos/{repo}/refs/{ref}/lineage", lineage),
    Route("/api/v1/repos/{repo}/diff", diff),
    Route("/api/v1/repos/{repo}/labels", list_refs),
    Route("/api/v1/repos/{repo}/branches", list_refs),
]
