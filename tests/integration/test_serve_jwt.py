"""datamonfs serve with JWT: the token matrix against a real server (401 with
WWW-Authenticate, 403 with a JSON reason, nothing served), JWKS keys, the cookie, token
create, and --auth none only on loopback (issue 17)."""

from __future__ import annotations

import json
import time

import httpx
import jwt
import pytest

from support.cli import one_line_error
from support.files import write
from support.serve import SECRET, secret_file
from support.tokens import claims, ec_key, hs256_with, jwks, public_pem, rsa_key, unsigned

pytestmark = pytest.mark.parametrize("store_url", ["local"], indirect=True)
FILE = "/api/v1/repos/imagery/refs/main/files/secret.txt"


@pytest.fixture
def repos(cli, tmp_path):
    for repo in ("imagery", "other"):
        write(tmp_path / repo, "secret.txt", b"the secret bytes\n")
        cli("repo", "create", repo)
        cli("bundle", "upload", repo, str(tmp_path / repo), "-m", "m")


def _check_refused(c: httpx.Client, token: str | None, status: int, words: str) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    for path in (FILE, "/api/v1/repos/imagery/bundles", "/api/v1/repos/imagery/refs/main/tree"):
        r = c.get(path, headers=headers)
        assert r.status_code == status, (path, r.text)
        assert b"the secret bytes" not in r.content
        body = r.json()
        assert words in body["message"], body
        challenge = r.headers["www-authenticate"]
        assert challenge.startswith('Bearer realm="datamonfs"')
        if status == 403:
            assert body["error"] == "forbidden" and 'error="insufficient_scope"' in challenge
        elif token is not None:
            assert 'error="invalid_token"' in challenge
    return challenge


def test_hs256_token_matrix(cli, serve, repos, tmp_path):
    s = serve("--jwt-secret-file", secret_file(tmp_path))
    now = int(time.time())
    good = jwt.encode(claims("read:imagery"), SECRET, "HS256")
    bad = {
        "expired": jwt.encode(claims(exp=now - 120), SECRET, "HS256"),
        "not valid yet": jwt.encode(claims(nbf=now + 600), SECRET, "HS256"),
        "not for this server": jwt.encode(claims(aud="elsewhere"), SECRET, "HS256"),
        "issuer": jwt.encode(claims(iss="evil"), SECRET, "HS256"),
        "signature": jwt.encode(claims(), b"another secret of 32 bytes or more!", "HS256"),
        "takes HS256": unsigned(claims()),
        "malformed": "a.b.c",
    }
    with httpx.Client(base_url=s.url) as c:
        challenge = _check_refused(c, None, 401, "needs a token")
        assert "error=" not in challenge  # RFC 6750 §3.1: no error code without a token
        for words, token in bad.items():
            _check_refused(c, token, 401, words if words != "malformed" else "")
        r = c.get(FILE, headers={"Authorization": "Basic dXNlcjpwYXNz"})
        assert r.status_code == 401 and "Bearer" in r.json()["message"]
        # a good token without the scope: 403, and nothing of the other repo is listed
        other = jwt.encode(claims("read:other write:imagery"), SECRET, "HS256")
        _check_refused(c, other, 403, "read:imagery")
        listed = c.get("/api/v1/repos", headers={"Authorization": f"Bearer {other}"}).json()
        assert [r["name"] for r in listed["repos"]] == ["other"]
        ok = c.get(FILE, headers={"Authorization": f"Bearer {good}"})
        assert ok.status_code == 200 and ok.content == b"the secret bytes\n"
        # the UI's cookie serves reads, never writes
        c.cookies.set("datamonfs_token", good)
        assert c.get(FILE).content == b"the secret bytes\n"
        writer = jwt.encode(claims("write:* read:*"), SECRET, "HS256")
        c.cookies.set("datamonfs_token", writer)
        r = c.put("/api/v1/repos/imagery/labels/l1", json={"ref": "main"})
        assert r.status_code == 401
        c.cookies.clear()
        r = c.put("/api/v1/repos/imagery/labels/l1", json={"ref": "main"},
                  headers={"Authorization": f"Bearer {good}"})
        assert r.status_code == 403 and "write:imagery" in r.json()["message"]
        r = c.put("/api/v1/repos/imagery/labels/l1", json={"ref": "main"},
                  headers={"Authorization": f"Bearer {writer}"})
        assert r.status_code == 200 and r.json()["moved"] is True
    assert cli("label", "get", "imagery", "l1").last_line
    s.stop()
    log = s.log()
    for token in [good, other, writer, *bad.values()]:
        assert token not in log and token.split(".")[1] not in log


def test_jwks_keys_and_algorithm_confusion(serve, repos, tmp_path):
    rsa, ec = rsa_key(), ec_key()
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks(("r", rsa), ("e", ec))))
    s = serve("--jwt-jwks-file", str(path), "--jwt-issuer", "https://id.example",
              "--jwt-audience", "dm")
    mine = claims("read:*", iss="https://id.example", aud="dm")
    with httpx.Client(base_url=s.url) as c:
        for token in (jwt.encode(mine, rsa, "RS256", headers={"kid": "r"}),
                      jwt.encode(mine, ec, "ES256", headers={"kid": "e"})):
            r = c.get(FILE, headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200 and r.content == b"the secret bytes\n"
        confused = hs256_with(public_pem(rsa), mine, {"kid": "r"})
        _check_refused(c, confused, 401, "signed with 'HS256'")
        _check_refused(c, unsigned(mine, {"kid": "r"}), 401, "signed with 'none'")
        _check_refused(c, jwt.encode(mine, rsa_key(), "RS256", headers={"kid": "r"}), 401,
                       "signature")
        _check_refused(c, jwt.encode(claims("read:*", iss="https://id.example"), rsa, "RS256",
                                      headers={"kid": "r"}), 401,
                       "not for this server")


def test_token_create_and_what_serve_refuses(cli, serve, repos, tmp_path):
    secret = secret_file(tmp_path)
    token = cli("token", "create", "--secret-file", secret, "--scope", "read:imagery",
                "--ttl", "1h").last_line
    s = serve("--jwt-secret-file", secret)
    with httpx.Client(base_url=s.url) as c:
        r = c.get(FILE, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        assert c.get("/api/v1/repos/other/bundles",
                     headers={"Authorization": f"Bearer {token}"}).status_code == 403
    r = cli("token", "create", "--secret-file", secret, "--scope", "admin:x", expect=1)
    one_line_error(r, "invalid scope")
    short = tmp_path / "short"
    short.write_bytes(b"short")
    one_line_error(cli("token", "create", "--secret-file", str(short), "--scope", "read:*",
                       expect=1), "at least 32")
    one_line_error(cli("serve", "--bind", "0.0.0.0:0", expect=2), "loopback only")
    one_line_error(cli("serve", "--bind", "0.0.0.0:0", "--auth", "none", expect=2),
                   "loopback only")
    one_line_error(cli("serve", "--jwt-secret-file", secret, "--jwt-jwks-file", secret,
                       expect=2), "not both")
    one_line_error(cli("serve", "--bind", "nonsense", expect=1), "HOST:PORT")
    one_line_error(cli("serve", "--bind", "127.0.0.1:0", "--jwt-jwks-file", secret, expect=1),
                   "not a usable key set")
