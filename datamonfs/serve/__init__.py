"""`datamonfs serve`: the HTTP API and the web UI over the Python API (docs/SERVE.md).

    app.py          the ASGI application: routes, the path guard; errors.py: error answers
    server.py       Hypercorn on trio: bind, loopback check, signals
    auth.py         JWTs: keys, claims, scopes; access.py: who a request is
    paths.py        the one check of URL paths; ranges.py: Range, If-None-Match, If-Range
    engine.py       the server's calls on the Python API; blocking.py: the worker threads
    routes_api.py   JSON reads; routes_files.py: file bytes; routes_write.py: uploads, labels
    params.py       query parameters and URL parts, checked
    uploads.py      request bodies for NewBundle; views.py: bundles as JSON
    ui/             the web UI's pages, templates, static files; openapi.py: the document
"""
