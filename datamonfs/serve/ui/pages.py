"""The UI's pages (see the package). Each page checks the same scope as the API route
it mirrors and asks the same engine calls."""

from __future__ import annotations

import datetime
import os

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ...cli.common import human_size
from .. import params
from ..access import grant_of, require
from ..auth import READ
from ..blocking import run
from ..engine import Engine
from ..routes_files import content_type
from ..views import bundle_json
from .preview import PREVIEW_BYTES, preview

PAGE = 200  # entries, bundles or changes a page shows
# Pages load their script, style and images from this server only and run no inline
# script: text from a bundle (names, messages, CSV cells) is escaped, and this is the
# second wall should an escape ever be missed.
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
            "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(os.path.join(os.path.dirname(__file__), "templates")),
    autoescape=True, undefined=jinja2.StrictUndefined)


def _time(value) -> str:
    """A datetime (the Python API's) or nanoseconds, as ISO 8601 in UTC to the second."""
    if isinstance(value, int):
        value = datetime.datetime.fromtimestamp(value / 1e9, datetime.timezone.utc)
    return value.isoformat(timespec="seconds")


_env.filters["size"] = human_size  # as the CLI prints sizes
_env.filters["time"] = _time
_env.filters["short"] = lambda text: (text or "")[:12]


def render(request: Request, template: str, http_status: int = 200, headers=None, **values
           ) -> HTMLResponse:
    auth = request.app.state.verifier is not None
    html = _env.get_template(template).render(auth=auth, **values)
    return HTMLResponse(html, http_status,
                        headers={**(headers or {}), "Content-Security-Policy": PAGE_CSP})


def render_error(request: Request, status: int, message: str, headers=None) -> Response:
    return render(request, "error.html", status, headers, status=status, message=message,
                  title=f"Error {status}")


def _engine(request: Request) -> Engine:
    return request.app.state.engine


async def repos_page(request: Request) -> HTMLResponse:
    grant = grant_of(request)
    repos = [r for r in await run(_engine(request).repos) if grant.allows(READ, r.name)]
    return render(request, "repos.html", repos=repos, title="Repos")


async def repo_page(request: Request) -> HTMLResponse:
    repo = params.repo(request)
    require(request, READ, repo)
    from ..routes_api import bundle_filters

    filters = bundle_filters(request)
    offset = params.integer(request, "offset", 0, 0, 10**9)
    doc = await run(_repo_page, _engine(request), repo, offset, filters)
    query = {k: v for k, v in request.query_params.items() if k != "offset"}
    return render(request, "repo.html", repo=repo, offset=offset, page=PAGE, filters=query,
                  title=repo, **doc)


def _repo_page(e: Engine, repo: str, offset: int, filters: dict) -> dict:
    info = e.repo(repo)
    page = e.bundles(repo, offset, PAGE, **filters)
    names = e.decorations(repo)
    return {"info": info, "bundles": [bundle_json(b, names) for b in page.items],
            "more": page.next is not None,
            "branches": e.refs(repo, "branch"), "labels": e.refs(repo, "label")}


async def tree_page(request: Request) -> HTMLResponse:
    repo = params.repo(request)
    require(request, READ, repo)
    ref, path = params.ref(request), params.path(request)
    after = params.text(request, "after", 1024)
    doc = await run(_tree_page, _engine(request), repo, ref, path, after)
    return render(request, "tree.html", repo=repo, ref=ref, path=path, crumbs=_crumbs(path),
                  title=f"{repo}:{ref}/{path}", **doc)


def _tree_page(e: Engine, repo: str, ref: str, path: str, after: str | None) -> dict:
    bundle = e.bundle(repo, ref)
    page = e.listdir(bundle, path, after, PAGE)
    return {"bundle": bundle.to_json(), "entries": page.items, "total": page.total,
            "next_after": page.next}


async def file_page(request: Request) -> HTMLResponse:
    repo = params.repo(request)
    require(request, READ, repo)
    ref, path = params.ref(request), params.path(request)
    doc = await run(_file_page, _engine(request), repo, ref, path)
    return render(request, "file.html", repo=repo, ref=ref, path=path, crumbs=_crumbs(path),
                  title=f"{repo}:{ref}/{path}", **doc)


def _file_page(e: Engine, repo: str, ref: str, path: str) -> dict:
    bundle = e.bundle(repo, ref)
    info = bundle.stat(path)
    doc = {"bundle": bundle.to_json(), "entry": info, "preview": None}
    if info.is_file:
        head = bundle.read_bytes(path, 0, PREVIEW_BYTES)
        doc["preview"] = preview(path, content_type(path), head, info.size)
    return doc


async def diff_page(request: Request) -> HTMLResponse:
    repo = params.repo(request)
    require(request, READ, repo)
    old = request.query_params.get("from")
    new = request.query_params.get("to")
    offset = params.integer(request, "offset", 0, 0, 10**9)
    result = None
    if old and new:
        from ..routes_api import _diff

        result = await run(_diff, _engine(request), repo, params.ref(request, "from"),
                        params.ref(request, "to"), offset, PAGE)
    return render(request, "diff.html", repo=repo, old=old or "", new=new or "",
                  offset=offset, title=f"diff {repo}", result=result)


async def lineage_page(request: Request) -> HTMLResponse:
    repo = params.repo(request)
    require(request, READ, repo)
    ref = params.ref(request)
    doc = await run(_lineage, _engine(request), repo, ref)
    grant = grant_of(request)
    doc["up"] = [b for b in doc["up"] if grant.allows(READ, b.repo)]
    doc["down"] = [b for b in doc["down"] if grant.allows(READ, b.repo)]
    return render(request, "lineage.html", repo=repo, ref=ref, title=f"lineage {repo}:{ref}",
                  **doc)


def _lineage(e: Engine, repo: str, ref: str) -> dict:
    """One generation each way: what it was made from, what was made from it."""
    bundle = e.bundle(repo, ref)
    graph = e.lineage(bundle, 1)
    return {"bundle": bundle.to_json(), "up": graph.inputs_of(bundle),
            "down": graph.outputs_of(bundle), "missing": graph.missing}


def _crumbs(path: str) -> list[tuple[str, str]]:
    """(name, path up to it) for each name of a path."""
    names = path.split("/") if path else []
    return [(n, "/".join(names[:i + 1])) for i, n in enumerate(names)]


ROUTES = [
    Route("/", repos_page),
    Route("/ui/repos/{repo}", repo_page),
    Route("/ui/repos/{repo}/diff", diff_page),
    Route("/ui/repos/{repo}/refs/{ref}/tree", tree_page),
    Route("/ui/repos/{repo}/refs/{ref}/tree/{path:path}", tree_page),
    Route("/ui/repos/{repo}/refs/{ref}/file/{path:path}", file_page),
    Route("/ui/repos/{repo}/refs/{ref}/lineage", lineage_page),
]

