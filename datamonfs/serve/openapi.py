"""The OpenAPI 3.1 document of the JSON API, served at /api/v1/openapi.json and kept in
docs/openapi.json (`python scripts/openapi_doc.py` writes it; a test fails when it drifts).
Schemathesis checks every response against it (tests/integration/test_serve_schema.py)."""

from __future__ import annotations

from .. import __version__

NAME = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"}
TIME = {"type": "string", "format": "date-time"}
ID = {"type": "string", "pattern": "^[0-9a-f]{64}$"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(required: dict, optional: dict | None = None) -> dict:
    return {"type": "object", "required": list(required),
            "properties": {**required, **(optional or {})}}


SCHEMAS = {
    "Error": _obj({"error": {"type": "string"}, "message": {"type": "string"}}),
    "Repo": _obj({"name": NAME, "description": {"type": "string"}, "time": TIME,
                  "author": {"type": "string"}, "email": {"type": "string"}}),
    "Bundle": _obj(
        {"id": ID, "repo": NAME, "time": TIME, "author": {"type": "string"},
         "email": {"type": "string"}, "message": {"type": "string"},
         "files": {"type": "integer", "minimum": 0}, "bytes": {"type": "integer", "minimum": 0},
         "parents": {"type": "array", "items": ID}, "tree": ID},
        {"branches": {"type": "array", "items": NAME}, "labels": {"type": "array", "items": NAME},
         "inputs": {"type": "array", "items": _obj({"repo": NAME, "bundle": ID})},
         "process": {"type": "object"}}),
    "Ref": _obj({"repo": NAME, "name": NAME, "kind": {"enum": ["branch", "label"]}, "bundle": ID,
                 "time": TIME, "author": {"type": "string"}, "email": {"type": "string"}}),
    "Entry": _obj(
        {"path": {"type": "string"}, "kind": {"enum": ["file", "dir", "link"]},
         "size": {"type": "integer", "minimum": 0},
         "mode": {"type": "string", "pattern": "^[0-7]{3,4}$"}, "mtime": TIME,
         "address": {**ID, "description": "the content address; a file's ETag"}},
        {"files": {"type": "integer", "minimum": 0}, "target": {"type": "string"}}),
    "Change": _obj({"path": {"type": "string"},
                    "change": {"enum": ["added", "deleted", "modified"]},
                    "old_size": _nullable({"type": "integer"}),
                    "new_size": _nullable({"type": "integer"})}),
    "LabelSet": _obj({"label": NAME, "bundle": ID, "before": _nullable(ID),
                      "moved": {"type": "boolean"}}),
    "Lineage": _obj({"start": {"type": "string"},
                     "bundles": {"type": "array", "items": _ref("Bundle")},
                     "edges": {"type": "array", "items": _obj({"input": {"type": "string"},
                                                              "output": {"type": "string"}})},
                     "missing": {"type": "array", "items": {"type": "string"}},
                     "truncated": {"type": "boolean"}}),
}


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS = {str(code): _json(_ref("Error"), what) for code, what in [
    (400, "a malformed request"), (401, "no token, or a bad one (see WWW-Authenticate)"),
    (403, "the token lacks the scope"), (404, "no such repo, ref or path"),
    (414, "the path is too long"), (502, "the store holds corrupt data"),
    (503, "the store cannot be reached")]}


def _param(name: str, where: str, schema: dict, description: str = "",
           required: bool | None = None) -> dict:
    return {"name": name, "in": where, "required": where == "path" if required is None else required,
            "schema": schema, "description": description}


REPO = _param("repo", "path", NAME)
REF = _param("ref", "path", {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}(~[0-9]{0,6})*$"},
             "a label, a branch, a bundle id or a unique prefix of one (4+ hex digits), "
             "optionally ~N")
PATH = _param("path", "path", {"type": "string", "pattern": "^[^\\x00-\\x1f\\x7f\\\\]*$"},
               "a path inside the bundle: names of 1-255 bytes of UTF-8 separated by '/', "
               "no '.' or '..'")
LIMIT = _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000})
OFFSET = _param("offset", "query", {"type": "integer", "minimum": 0, "maximum": 10**9})


def _get(summary: str, parameters: list, ok: dict, errors=("400", "401", "403", "404", "502",
                                                          "503")) -> dict:
    return {"get": {"summary": summary, "parameters": parameters,
                    "responses": {"200": ok, **{c: ERRORS[c] for c in errors}}}}


def _tree_get() -> dict:
    return _get("What is at a path: an entry, and for a directory a page of its entries",
                [REPO, REF, _param("after", "query", {"type": "string", "maxLength": 1024,
                                                          "pattern": "^[^\\x00]*$"},
                                   "the last name of the previous page"), LIMIT],
                _json(_obj({"bundle": ID, "entry": _ref("Entry")},
                           {"entries": {"type": "array", "items": _ref("Entry")},
                            "total": {"type": "integer"},
                            "next_after": _nullable({"type": "string"})})))


def _paths() -> dict:
    bundles_query = [_param(n, "query", {"type": "string", "maxLength": 200,
                                         "pattern": "^[^\\x00]*$"}, d) for n, d in [
        ("branch", "only bundles this branch has pointed at"),
        ("label", "only bundles this label has pointed at"),
        ("author", "text in the author's name or email"), ("grep", "text in the message")]]
    bundles_query += [_param(n, "query", {"type": "string", "format": "date-time"}, d)
                      for n, d in [("since", "made at or after"), ("until", "made at or before")]]
    file_ok = {"description": "the file's bytes",
               "headers": {"ETag": {"schema": {"type": "string"}},
                           "Accept-Ranges": {"schema": {"type": "string"}}},
               "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                   "format": "binary"}}}}
    file_responses = {"200": file_ok, "206": {**file_ok, "description": "the ranges asked for"},
                      "304": {"description": "If-None-Match names the ETag"},
                      "416": {"description": "no range is satisfiable"},
                      **{c: ERRORS[c] for c in ("400", "401", "403", "404", "414", "502", "503")}}
    file_params = [REPO, REF, PATH,
                   _param("download", "query", {"enum": ["1"]}, "1: as an attachment"),
                   _param("Range", "header", {"type": "string"}, "bytes=START-END[, ...]"),
                   _param("If-None-Match", "header", {"type": "string"}),
                   _param("If-Range", "header", {"type": "string"})]
    writes = ("400", "401", "403", "404", "409", "502", "503")
    return {
        "/api/v1/repos": _get("Repos the token may read", [],
                              _json(_obj({"repos": {"type": "array", "items": _ref("Repo")}})),
                              ("401", "502", "503")),
        "/api/v1/repos/{repo}": _get("One repo", [REPO], _json(_ref("Repo"))),
        "/api/v1/repos/{repo}/bundles": _get(
            "Bundles, newest first", [REPO, *bundles_query, OFFSET, LIMIT],
            _json(_obj({"bundles": {"type": "array", "items": _ref("Bundle")},
                        "next_offset": _nullable({"type": "integer"})}))),
        "/api/v1/repos/{repo}/refs/{ref}": _get("The bundle a ref names", [REPO, REF],
                                                _json(_ref("Bundle"))),
        "/api/v1/repos/{repo}/refs/{ref}/tree": _tree_get(),
        "/api/v1/repos/{repo}/refs/{ref}/tree/{path}": {
            "get": {**_tree_get()["get"], "parameters": [REPO, REF, PATH,
                                                         *_tree_get()["get"]["parameters"][2:]]}},
        "/api/v1/repos/{repo}/refs/{ref}/files/{path}": {
            "get": {"summary": "A file's bytes (Range, If-None-Match, If-Range)",
                    "parameters": file_params, "responses": file_responses},
            "head": {"summary": "A file's headers", "parameters": file_params,
                     "responses": file_responses}},
        "/api/v1/repos/{repo}/refs/{ref}/lineage": _get(
            "What a bundle was made from (up) and what was made from it (down)",
            [REPO, REF, _param("depth", "query", {"type": "integer", "minimum": 1,
                                                  "maximum": 100})], _json(_ref("Lineage"))),
        "/api/v1/repos/{repo}/diff": _get(
            "Changes from one bundle to another, in path order",
            [REPO, {**REF, "name": "from", "in": "query", "required": True},
             {**REF, "name": "to", "in": "query", "required": True}, OFFSET, LIMIT],
            _json(_obj({"from": ID, "to": ID, "changes": {"type": "array",
                                                          "items": _ref("Change")},
                        "next_offset": _nullable({"type": "integer"})}))),
        "/api/v1/repos/{repo}/labels": _get(
            "Labels", [REPO], _json(_obj({"labels": {"type": "array", "items": _ref("Ref")}}))),
        "/api/v1/repos/{repo}/labels/{label}": {"put": {
            "summary": "Point a label at the bundle a ref names (scope write:REPO)",
            "parameters": [REPO, _param("label", "path", NAME)],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": _obj({"ref": {"type": "string", "minLength": 1,
                                        "maxLength": 200}})}}},
            "responses": {"200": _json(_ref("LabelSet")), **{c: ERRORS.get(c) or _json(
                _ref("Error"), "a branch has that name") for c in writes}}}},
        "/api/v1/repos/{repo}/branches": _get(
            "Branches", [REPO],
            _json(_obj({"branches": {"type": "array", "items": _ref("Ref")}}))),
        "/api/v1/repos/{repo}/branches/{branch}/bundles": {"post": {
            "summary": "A new bundle on a branch from a tar stream or a multipart form "
                       "(scope write:REPO); it starts from the branch head unless replace=1",
            "parameters": [REPO, _param("branch", "path", NAME),
                           _param("message", "query", {"type": "string", "minLength": 1,
                                                       "maxLength": 4096}, required=True),
                           _param("label", "query", NAME),
                           _param("replace", "query", {"enum": ["0", "1"]},
                                  "1: the bundle holds only what is sent")],
            "requestBody": {"required": True, "content": {
                "application/x-tar": {"schema": {"type": "string", "format": "binary"}},
                "multipart/form-data": {"schema": {"type": "object", "properties": {
                    "file": {"type": "array", "items": {"type": "string",
                                                        "format": "binary"}}}}}}},
            "responses": {"201": _json(_ref("Bundle"), "the new bundle"),
                          "413": _json(_ref("Error"), "too large"),
                          **{c: ERRORS.get(c) or _json(_ref("Error"), "conflict")
                             for c in writes}}}},
    }


def document() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "datamonfs", "version": __version__,
                 "description": "Repos, bundles and their files over HTTP "
                                "(`datamonfs serve`; docs/SERVE.md)."},
        "servers": [{"url": "/"}],
        "components": {"schemas": SCHEMAS, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
        "security": [{"bearer": []}, {}],
        "paths": _paths(),
    }
