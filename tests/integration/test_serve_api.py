"""datamonfs serve: the JSON API and file bytes, with a real HTTP client against the
server on a free loopback port, on both stores (issue 17)."""

from __future__ import annotations

import http.client
import os
import re
import urllib.parse

import httpx
import pytest

from support.files import write


@pytest.fixture
def imagery(cli, tmp_path):
    """Repo `imagery`: v1 (a CSV, a 3 MB file of several chunks, sub/hello.txt) and main
    (v1 plus sub/more.txt, a changed CSV)."""
    data = tmp_path / "data"
    big = os.urandom(3_000_000)
    write(data, "table.csv", b"a,b,c\n1,2,3\n4,5,6\n")
    write(data, "big.bin", big)
    write(data, "sub/hello.txt", b"hello\n")
    cli("repo", "create", "imagery", "-d", "tiles")
    v1 = cli("bundle", "upload", "imagery", str(data), "-m", "first", "--label", "v1").last_line
    write(data, "sub/more.txt", b"more\n")
    write(data, "table.csv", b"a,b,c\n1,2,3\n4,5,6\n7,8,9\n")
    main = cli("bundle", "upload", "imagery", str(data), "-m", "second cut").last_line
    return {"v1": v1, "main": main, "big": big}


def test_repos_bundles_refs_and_trees(serve, imagery):
    s = serve()
    with httpx.Client(base_url=s.url) as c:
        repos = c.get("/api/v1/repos").json()["repos"]
        assert [r["name"] for r in repos] == ["imagery"] and repos[0]["description"] == "tiles"
        assert c.get("/api/v1/repos/imagery").json()["name"] == "imagery"
        page = c.get("/api/v1/repos/imagery/bundles").json()
        assert [b["id"] for b in page["bundles"]] == [imagery["main"], imagery["v1"]]
        assert page["bundles"][0]["branches"] == ["main"] and page["bundles"][1]["labels"] == ["v1"]
        assert page["next_offset"] is None
        first = c.get("/api/v1/repos/imagery/bundles", params={"limit": 1}).json()
        assert [b["id"] for b in first["bundles"]] == [imagery["main"]] and first["next_offset"] == 1
        rest = c.get("/api/v1/repos/imagery/bundles", params={"limit": 1, "offset": 1}).json()
        assert [b["id"] for b in rest["bundles"]] == [imagery["v1"]]
        grep = c.get("/api/v1/repos/imagery/bundles", params={"grep": "CUT"}).json()
        assert [b["id"] for b in grep["bundles"]] == [imagery["main"]]
        assert c.get("/api/v1/repos/imagery/bundles", params={"author": "nobody"}).json()[
            "bundles"] == []
        assert c.get("/api/v1/repos/imagery/bundles",
                     params={"since": "2999-01-01"}).json()["bundles"] == []
        for ref in ("v1", imagery["v1"], imagery["v1"][:8], "main~1"):
            assert c.get(f"/api/v1/repos/imagery/refs/{ref}").json()["id"] == imagery["v1"]
        root = c.get("/api/v1/repos/imagery/refs/main/tree").json()
        assert [e["path"] for e in root["entries"]] == ["big.bin", "sub", "table.csv"]
        assert root["entry"]["kind"] == "dir" and root["entry"]["files"] == 4
        sub = c.get("/api/v1/repos/imagery/refs/main/tree/sub").json()
        assert [(e["path"], e["size"]) for e in sub["entries"]] == [("sub/hello.txt", 6),
                                                                    ("sub/more.txt", 5)]
        one = c.get("/api/v1/repos/imagery/refs/main/tree/sub", params={"limit": 1}).json()
        assert [e["path"] for e in one["entries"]] == ["sub/hello.txt"]
        assert one["next_after"] == "hello.txt" and one["total"] == 2
        two = c.get("/api/v1/repos/imagery/refs/main/tree/sub",
                    params={"limit": 1, "after": "hello.txt"}).json()
        assert [e["path"] for e in two["entries"]] == ["sub/more.txt"] and two["next_after"] is None
        f = c.get("/api/v1/repos/imagery/refs/main/tree/sub/hello.txt").json()
        assert f["entry"]["kind"] == "file" and re.fullmatch("[0-9a-f]{64}", f["entry"]["address"])
        assert "entries" not in f
        diff = c.get("/api/v1/repos/imagery/diff", params={"from": "v1", "to": "main"}).json()
        assert diff["changes"] == [
            {"path": "sub/more.txt", "change": "added", "old_size": None, "new_size": 5},
            {"path": "table.csv", "change": "modified", "old_size": 18, "new_size": 24}]
        labels = c.get("/api/v1/repos/imagery/labels").json()["labels"]
        assert [(r["name"], r["bundle"]) for r in labels] == [("v1", imagery["v1"])]
        branches = c.get("/api/v1/repos/imagery/branches").json()["branches"]
        assert [(r["name"], r["bundle"]) for r in branches] == [("main", imagery["main"])]


def test_errors_are_json_with_the_right_status(serve, imagery):
    s = serve()
    with httpx.Client(base_url=s.url) as c:
        for path, status, code in [
                ("/api/v1/repos/nope", 404, "not_found"),
                ("/api/v1/repos/imagery/refs/nolabel", 404, "not_found"),
                ("/api/v1/repos/imagery/refs/main/tree/missing", 404, "not_found"),
                ("/api/v1/repos/imagery/refs/main/files/sub", 400, "is_a_directory"),
                ("/api/v1/repos/imagery/refs/main/tree/table.csv/x", 404, "not_found"),
                ("/api/v1/repos/bad name/bundles", 400, "invalid_name"),
                ("/api/v1/repos/imagery/bundles?limit=0", 400, "bad_request"),
                ("/api/v1/repos/imagery/bundles?since=yesterday", 400, "bad_request"),
                ("/api/v1/repos/imagery/diff?from=v1", 400, "bad_request"),
                ("/api/v1/nothing/here", 404, "http_404")]:
            r = c.get(path)
            assert (r.status_code, r.json()["error"]) == (status, code), (path, r.text)
            assert r.json()["message"]


def test_file_bytes_ranges_and_conditional_requests(serve, imagery):
    s = serve()
    big = imagery["big"]
    url = "/api/v1/repos/imagery/refs/v1/files/big.bin"
    with httpx.Client(base_url=s.url) as c:
        r = c.get(url)
        assert r.status_code == 200 and r.content == big
        assert r.headers["content-type"] == "application/octet-stream"
        assert r.headers["accept-ranges"] == "bytes"
        etag = r.headers["etag"]
        tree = c.get("/api/v1/repos/imagery/refs/v1/tree/big.bin").json()
        assert etag == f'"{tree["entry"]["address"]}"'
        # the same bytes through another ref have the same ETag
        assert c.head("/api/v1/repos/imagery/refs/main/files/big.bin").headers["etag"] == etag
        csv = c.get("/api/v1/repos/imagery/refs/v1/files/table.csv")
        assert csv.headers["content-type"] == "text/csv; charset=utf-8"
        assert c.get(url, headers={"If-None-Match": etag}).status_code == 304
        assert c.get(url, headers={"If-None-Match": f'"x", W/{etag}'}).status_code == 304
        assert c.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
        for header, start, end in [("bytes=0-0", 0, 1), ("bytes=10-19", 10, 20),
                                   ("bytes=-100", len(big) - 100, len(big)),
                                   ("bytes=2999990-", 2999990, len(big)),
                                   ("bytes=1048570-2097160", 1048570, 2097161),  # across chunks
                                   ("bytes=2999990-99999999", 2999990, len(big))]:
            r = c.get(url, headers={"Range": header})
            assert r.status_code == 206, header
            assert r.content == big[start:end], header
            assert r.headers["content-range"] == f"bytes {start}-{end - 1}/{len(big)}"
        r = c.get(url, headers={"Range": "bytes=3000000-"})
        assert r.status_code == 416 and r.headers["content-range"] == "bytes */3000000"
        assert c.get(url, headers={"Range": "bytes=5-1"}).status_code == 200  # invalid: ignored
        assert c.get(url, headers={"Range": "lines=1-2"}).status_code == 200
        r = c.get(url, headers={"Range": "bytes=0-0", "If-Range": '"old"'})
        assert r.status_code == 200 and len(r.content) == len(big)
        r = c.get(url, headers={"Range": "bytes=0-0", "If-Range": etag})
        assert r.status_code == 206 and r.content == big[:1]
        r = c.get(url, headers={"Range": "bytes=0-9, 100-109, 5-14"})
        assert r.status_code == 206
        kind = r.headers["content-type"]
        assert kind.startswith("multipart/byteranges; boundary=")
        parts = r.content.split(b"--" + kind.split("=", 1)[1].encode())
        bodies = [p.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n") for p in parts[1:-1]]
        assert bodies == [big[0:15], big[100:110]]  # overlapping ranges merged, sorted
        assert int(r.headers["content-length"]) == len(r.content)
        head = c.head(url, headers={"Range": "bytes=10-19"})
        assert head.status_code == 206 and head.headers["content-length"] == "10"
        assert head.content == b""
        dl = c.get(url, params={"download": "1"})
        assert dl.headers["content-disposition"].startswith('attachment; filename="big.bin"')


def _raw_get(url: str, path: str) -> int:
    """A GET of `path` exactly as written (httpx would normalise dot segments)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        response = conn.getresponse()
        body = response.read()
        assert b"root:" not in body
        return response.status
    finally:
        conn.close()


@pytest.mark.parametrize("store_url", ["local"], indirect=True)
def test_path_traversal_is_refused(serve, imagery):
    s = serve()
    base = "/api/v1/repos/imagery/refs/main/files/"
    assert _raw_get(s.url, base + "sub/hello.txt") == 200
    for path in [base + "../../../../etc/passwd", base + "sub/../table.csv",
                 base + "%2e%2e/%2e%2e/etc/passwd", base + "sub%2Fhello.txt",
                 base + "sub%2fhello.txt", base + "sub%5Chello.txt", base + "sub//hello.txt",
                 base + "./table.csv", base + "%2E/table.csv", base + "sub/hello.txt%00.csv",
                 base + "%00", base + "sub/%0a", "/api/v1/repos/..%2f..%2fetc/bundles",
                 "/api/v1/repos/imagery/refs/..%2F..%2Fmain/tree", base + "%ff%fe",
                 "/ui/repos/imagery/refs/main/file/../../etc/passwd"]:
        assert _raw_get(s.url, path) == 400, path
    assert _raw_get(s.url, base + "a/" * 5000) == 414
    assert _raw_get(s.url, base + "x" * 256) == 400  # a name longer than a bundle allows
