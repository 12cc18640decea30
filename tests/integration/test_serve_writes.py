"""datamonfs serve: new bundles from a tar stream and a multipart form, labels, lineage,
a 100,000-file directory served a page at a time (issue 17)."""

from __future__ import annotations

import io
import os
import tarfile
import time

import httpx
import jwt
import pytest

import datamonfs
from support.files import write
from support.serve import SECRET, secret_file
from support.tokens import claims


def _tar(files: dict[str, bytes], links: dict[str, str] | None = None, bad: str | None = None
         ) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o640, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        if bad:
            info = tarfile.TarInfo(bad)
            info.type = tarfile.FIFOTYPE
            tar.addfile(info)
    return out.getvalue()


@pytest.fixture
def repo(cli, tmp_path):
    write(tmp_path / "data", "keep.txt", b"kept\n")
    cli("repo", "create", "imagery")
    return cli("bundle", "upload", "imagery", str(tmp_path / "data"), "-m", "base").last_line


def test_upload_a_tar_stream_and_a_form(cli, serve, repo, tmp_path):
    s = serve()
    big = os.urandom(3 << 20)
    body = _tar({"tiles/a.bin": big, "./tiles/b.txt": b"bee\n"}, {"tiles/latest": "a.bin"})
    with httpx.Client(base_url=s.url, timeout=60) as c:
        url = "/api/v1/repos/imagery/branches/main/bundles"

        def chunks():  # streamed: the server reads it as it comes
            for i in range(0, len(body), 65536):
                yield body[i:i + 65536]

        r = c.post(url, params={"message": "tiles", "label": "t1"}, content=chunks(),
                   headers={"Content-Type": "application/x-tar"})
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["parents"] == [repo] and made["message"] == "tiles" and made["files"] == 4
        got = c.get("/api/v1/repos/imagery/refs/t1/files/tiles/a.bin")
        assert got.content == big
        tree = c.get("/api/v1/repos/imagery/refs/main/tree/tiles").json()
        assert [(e["path"], e["kind"], e["mode"]) for e in tree["entries"]] == [
            ("tiles/a.bin", "file", "640"), ("tiles/b.txt", "file", "640"),
            ("tiles/latest", "link", "777")]
        assert c.get("/api/v1/repos/imagery/refs/main/files/keep.txt").content == b"kept\n"
        # the same again changes nothing: no new bundle, the head returned
        again = c.post(url, params={"message": "again"}, content=body,
                       headers={"Content-Type": "application/x-tar"})
        assert again.status_code == 200 and again.json()["id"] == made["id"]
        # a form, replacing the tree
        files = [("file", ("notes/x.csv", b"a,b\n1,2\n", "text/csv")),
                 ("file", ("y.txt", b"why\n", "text/plain"))]
        r = c.post(url, params={"message": "form", "replace": "1"}, files=files)
        assert r.status_code == 201, r.text
        root = c.get("/api/v1/repos/imagery/refs/main/tree").json()
        assert [e["path"] for e in root["entries"]] == ["notes", "y.txt"]
        assert c.get("/api/v1/repos/imagery/refs/main/files/notes/x.csv").content == b"a,b\n1,2\n"
    assert cli("bundle", "list", "imagery", "--json").out.count('"id"') == 3


@pytest.mark.parametrize("store_url", ["local"], indirect=True)
def test_bad_uploads_leave_nothing(cli, serve, repo):
    s = serve()
    url = "/api/v1/repos/imagery/branches/main/bundles"
    tar = {"Content-Type": "application/x-tar"}
    with httpx.Client(base_url=s.url, timeout=60) as c:
        for body, params, headers, words in [
                (_tar({"../escape.txt": b"x"}), {"message": "m"}, tar, "'..'"),
                (_tar({"/abs.txt": b"x"}), {"message": "m"}, tar, "leading '/'"),
                (_tar({"ok.txt": b"x"}, bad="fifo"), {"message": "m"}, tar, "fifo"),
                (_tar({"ok.txt": b"x"}, {"l": "../../out"}), {"message": "m"}, tar, "symlink"),
                (b"not a tar at all" * 100, {"message": "m"}, tar, "tar"),
                (_tar({"ok.txt": b"x"}), {}, tar, "message"),
                (_tar({"ok.txt": b"x"}), {"message": "m"}, {"Content-Type": "text/plain"},
                 "x-tar"),
                (_tar({"ok.txt": b"x"}), {"message": "m", "label": "main"}, tar, "branch")]:
            r = c.post(url, params=params, content=body, headers=headers)
            assert r.status_code in (400, 409), (words, r.text)
            assert words in r.json()["message"], (words, r.json())
        r = c.post(url.replace("imagery", "nope"), params={"message": "m"},
                   content=_tar({"a": b"x"}), headers=tar)
        assert r.status_code == 404
    assert cli("bundle", "list", "imagery", "--json").out.count('"id"') == 1


@pytest.mark.parametrize("store_url", ["local"], indirect=True)
def test_writes_need_the_write_scope_and_record_the_token_author(cli, serve, repo, tmp_path):
    s = serve("--jwt-secret-file", secret_file(tmp_path))
    reader = jwt.encode(claims("read:imagery"), SECRET, "HS256")
    writer = jwt.encode(claims("write:imagery read:imagery", name="Bo", email="bo@example.org"),
                        SECRET, "HS256")
    url = "/api/v1/repos/imagery/branches/main/bundles"
    body = _tar({"new.txt": b"new\n"})
    with httpx.Client(base_url=s.url, timeout=60) as c:
        r = c.post(url, params={"message": "m"}, content=body,
                   headers={"Content-Type": "application/x-tar",
                            "Authorization": f"Bearer {reader}"})
        assert r.status_code == 403 and "write:imagery" in r.json()["message"]
        r = c.post(url, params={"message": "by Bo"}, content=body,
                   headers={"Content-Type": "application/x-tar",
                            "Authorization": f"Bearer {writer}"})
        assert r.status_code == 201 and r.json()["author"] == "Bo"
        r = c.put("/api/v1/repos/imagery/labels/v9", json={"ref": "main~1"},
                  headers={"Authorization": f"Bearer {writer}"})
        assert r.json() == {"label": "v9", "bundle": repo, "before": None, "moved": True}
        r = c.put("/api/v1/repos/imagery/labels/v9", json={"ref": repo},
                  headers={"Authorization": f"Bearer {writer}"})
        assert r.json()["moved"] is False
        for bad in (b"{}", b"not json", b'{"ref": "nolabel"}', b'{"ref": 5}'):
            r = c.put("/api/v1/repos/imagery/labels/v9", content=bad,
                      headers={"Authorization": f"Bearer {writer}"})
            assert r.status_code in (400, 404), bad
        r = c.put("/api/v1/repos/imagery/labels/main", json={"ref": repo},
                  headers={"Authorization": f"Bearer {writer}"})
        assert r.status_code == 409 and "branch" in r.json()["message"]
    log = cli("label", "list", "imagery", "--json").out
    assert "bo@example.org" in log


def _store(cli, monkeypatch) -> datamonfs.Store:
    """The CLI user's store through the Python API, in this process (its config, cache)."""
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME",
                "DATAMONFS_STORE"):
        monkeypatch.setenv(var, cli.env[var])
    return datamonfs.open(create=True)


def test_lineage(cli, serve, repo, monkeypatch):
    store = _store(cli, monkeypatch)
    try:
        store.create_repo("derived")
        with store.repo("derived").new_bundle(message="from imagery", inputs=[f"imagery:{repo}"],
                                              process={"description": "counted"}) as nb:
            nb.write_bytes("count.txt", b"1\n")
        child = nb.bundle.id
    finally:
        store.close()
    s = serve()
    with httpx.Client(base_url=s.url) as c:
        up = c.get(f"/api/v1/repos/derived/refs/{child}/lineage").json()
        assert {"input": f"imagery:{repo}", "output": f"derived:{child}"} in up["edges"]
        down = c.get(f"/api/v1/repos/imagery/refs/{repo}/lineage", params={"depth": 1}).json()
        assert f"derived:{child}" in [e["output"] for e in down["edges"]]
        page = c.get(f"/ui/repos/imagery/refs/{repo}/lineage", headers={"Accept": "text/html"})
        assert f"/ui/repos/derived/refs/{child}/tree" in page.text


@pytest.mark.parametrize("store_url", ["local"], indirect=True)
def test_a_100000_file_directory_is_served_a_page_at_a_time(cli, serve, monkeypatch):
    """Made with the Python API in this process (100,000 entries sharing one chunk)."""
    store = _store(cli, monkeypatch)
    try:
        store.create_repo("big")
        with store.repo("big").new_bundle(message="wide") as nb:
            for i in range(100_000):
                nb.write_bytes(f"wide/f{i:06d}", b"x")
    finally:
        store.close()
    s = serve()
    with httpx.Client(base_url=s.url, timeout=60) as c:
        start = time.monotonic()
        first = c.get("/api/v1/repos/big/refs/main/tree/wide", params={"limit": 1000}).json()
        assert first["total"] == 100_000 and len(first["entries"]) == 1000
        assert first["next_after"] == "f000999"
        late = c.get("/api/v1/repos/big/refs/main/tree/wide",
                     params={"after": "f099949", "limit": 1000}).json()
        assert [e["path"] for e in late["entries"]][:2] == ["wide/f099950", "wide/f099951"]
        assert len(late["entries"]) == 50 and late["next_after"] is None
        page = c.get("/ui/repos/big/refs/main/tree/wide", params={"after": "f050000"},
                     headers={"Accept": "text/html"})
        assert page.status_code == 200 and "f050001" in page.text and "f049999" not in page.text
        assert c.get("/api/v1/repos/big/refs/main/files/wide/f077777").content == b"x"
        assert time.monotonic() - start < 60  # a functional deadline: pages, not the whole
