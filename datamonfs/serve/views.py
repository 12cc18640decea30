"""Records as the API returns them (the same fields as the CLI's --json)."""

from __future__ import annotations

import datetime

from ..core.model import DIR, LINK, Bundle, Entry, RefRecord, RepoInfo


def iso_time(ns: int) -> str:
    return datetime.datetime.fromtimestamp(ns / 1e9, datetime.timezone.utc).isoformat(
        timespec="seconds")


def repo_json(r: RepoInfo) -> dict:
    return {"name": r.name, "description": r.description, "time": iso_time(r.time),
            "author": r.author_name, "email": r.author_email}


def bundle_json(b: Bundle, names: dict | None = None) -> dict:
    doc = {"id": b.id, "repo": b.repo, "time": iso_time(b.time), "author": b.author_name,
           "email": b.author_email, "message": b.message, "files": b.files, "bytes": b.bytes,
           "parents": list(b.parents), "tree": b.tree, **b.provenance.to_obj()}
    if names is not None:
        doc["branches"] = names.get("branches", [])
        doc["labels"] = names.get("labels", [])
    return doc


def ref_json(r: RefRecord) -> dict:
    return {"name": r.name, "kind": r.kind, "bundle": r.bundle, "time": iso_time(r.time),
            "author": r.author_name, "email": r.author_email}


def entry_json(e: Entry, path: str, address: str | None = None) -> dict:
    doc = {"name": e.name, "path": path, "kind": e.kind, "size": e.size,
           "mode": format(e.mode, "o").rjust(3, "0"), "mtime": iso_time(e.mtime)}
    if e.kind == DIR:
        doc["files"] = e.files
    elif e.kind == LINK:
        doc["target"] = e.target
    elif address is not None:
        doc["address"] = address
    return doc
