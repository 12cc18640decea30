"""Schemathesis against the OpenAPI document datamonfs serve serves: every operation with
generated (also hostile) parameters, no 5xx, every response as the document says; the
document committed in docs/ is the one served (issue 17)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest
import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance
from hypothesis import HealthCheck, settings

from support.cli import CLI
from support.files import write
from support.serve import Server

from datamonfs.serve.openapi import document

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
EXAMPLES = int(os.environ.get("DATAMONFS_SCHEMA_EXAMPLES", "8"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server over a store with one repo (labels v1, v2, a branch, nested files)."""
    tmp = tmp_path_factory.mktemp("schema")
    cli = CLI(str(tmp / "home"), "file://" + str(tmp / "store"))
    cli("config", "create", "--name", "Ada", "--email", "ada@example.org")
    cli("repo", "create", "imagery")
    write(tmp / "d", "a/b.csv", b"x,y\n1,2\n")
    write(tmp / "d", "c.bin", os.urandom(5000))
    cli("bundle", "upload", "imagery", str(tmp / "d"), "-m", "one", "--label", "v1")
    write(tmp / "d", "a/new.txt", b"new\n")
    cli("bundle", "upload", "imagery", str(tmp / "d"), "-m", "two", "--label", "v2")
    s = Server(cli)
    yield s
    s.stop()
    log = s.log()
    assert "Traceback" not in log, log[-3000:]


# The document the server serves (test_the_committed_document_is_the_served_one checks
# that they are one): loaded here, as pytest collects, since the server starts later.
schema = schemathesis.openapi.from_dict(document())


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case, server):
    # Every check but "a schema-valid request is accepted": the document cannot say all a
    # bundle path or name must be (1-255 bytes of UTF-8 per name, no '.' or '..' name),
    # and what it cannot say is answered 400, which is what a client should get.
    case.call_and_validate(base_url=server.url, timeout=30,
                           excluded_checks=[positive_data_acceptance])


def test_the_committed_document_is_the_served_one(server):
    served = httpx.get(server.url + "/api/v1/openapi.json").json()
    with open(os.path.join(ROOT, "docs", "openapi.json"), encoding="utf-8") as f:
        assert json.load(f) == served
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "openapi_doc.py"),
                        "--check"], capture_output=True)
    assert r.returncode == 0, "docs/openapi.json is out of date: python scripts/openapi_doc.py"
