"""The web UI: server-rendered pages over the same engine calls as the JSON API, with a
little JavaScript for the token field. Previews and downloads load the API's file route,
so what a page shows is what the API serves.

    /                                        repos
    /ui/repos/REPO                           bundles (filters, pages), branches, labels
    /ui/repos/REPO/refs/REF/tree[/PATH]      a directory, a page of entries at a time
    /ui/repos/REPO/refs/REF/file/PATH        a file: preview (text, CSV head, image), download
    /ui/repos/REPO/refs/REF/lineage          what a bundle came from, what was made from it
    /ui/repos/REPO/diff?from=REF&to=REF      the diff of two bundles
"""

from __future__ import annotations

import os

from .pages import ROUTES, render_error

STATIC = os.path.join(os.path.dirname(__file__), "static")

__all__ = ["ROUTES", "STATIC", "render_error"]
