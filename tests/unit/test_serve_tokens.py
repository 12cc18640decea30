"""JWT checks of datamonfs serve, in-process: every way a token can be wrong (issue 17)."""

from __future__ import annotations

import json
import time

import jwt
import pytest

from datamonfs.errors import ConfigError
from datamonfs.serve.auth import Forbidden, Unauthorized, Verifier, create_token, parse_scopes
from support.tokens import claims, ec_key, hs256_with, jwks, public_pem, rsa_key, unsigned

SECRET = b"k" * 40


@pytest.fixture
def hs(tmp_path) -> Verifier:
    path = tmp_path / "secret"
    path.write_bytes(SECRET + b"\n")
    return Verifier.from_secret_file(str(path))


@pytest.fixture(scope="module")
def keys():
    return {"r1": rsa_key(), "e1": ec_key()}


@pytest.fixture
def pk(tmp_path, keys) -> Verifier:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks(*keys.items())))
    return Verifier.from_jwks_file(str(path))


def _refused(verifier: Verifier, token: str, words: str) -> None:
    with pytest.raises(Unauthorized) as e:
        verifier.verify(token)
    assert words in str(e.value)
    assert token not in str(e.value)


def test_good_tokens_grant_their_scopes(hs, pk, keys):
    g = hs.verify(create_token(SECRET, ["read:imagery", "write:x"], 60, "ada"))
    assert g.subject == "ada" and g.allows("read", "imagery") and g.allows("write", "x")
    assert not g.allows("read", "x") and not g.allows("write", "imagery")
    with pytest.raises(Forbidden) as e:
        g.require("read", "other")
    assert e.value.scope == "read:other"
    rs = jwt.encode(claims("read:*"), keys["r1"], "RS256", headers={"kid": "r1"})
    assert pk.verify(rs).allows("read", "anything")
    es = jwt.encode(claims("write:*", name="Bo", email="bo@x"), keys["e1"], "ES256",
                    headers={"kid": "e1"})
    g = pk.verify(es)
    assert g.allows("write", "r") and not g.allows("read", "r") and g.email == "bo@x"


def test_the_token_matrix(hs, pk, keys, tmp_path):
    now = int(time.time())
    _refused(hs, jwt.encode(claims(exp=now - 120), SECRET, "HS256"), "expired")
    _refused(hs, jwt.encode(claims(nbf=now + 600), SECRET, "HS256"), "not valid yet")
    _refused(hs, jwt.encode(claims(aud="other"), SECRET, "HS256"), "not for this server")
    _refused(hs, jwt.encode(claims(iss="evil"), SECRET, "HS256"), "issuer")
    _refused(hs, jwt.encode(claims(exp=None), SECRET, "HS256"), "'exp'")
    _refused(hs, jwt.encode(claims(aud=None), SECRET, "HS256"), "'aud'")
    _refused(hs, jwt.encode(claims(iss=None), SECRET, "HS256"), "'iss'")
    _refused(hs, jwt.encode(claims(), b"w" * 40, "HS256"), "signature")
    _refused(hs, unsigned(claims()), "takes HS256")
    _refused(hs, jwt.encode(claims(), keys["r1"], "RS256"), "takes HS256")
    _refused(hs, "not.a.jwt", "not a JWT")
    _refused(hs, "x" * 10000, "too long")
    # The JWKS server: none, HS256 with its own public key as the secret (algorithm
    # confusion), a wrong key, an unknown kid, a key of the other type.
    _refused(pk, unsigned(claims()), "kid")
    _refused(pk, unsigned(claims(), {"kid": "r1"}), "signed with 'none'")
    for kid in ("r1", "e1"):
        pem = public_pem(keys[kid])
        _refused(pk, hs256_with(pem, claims(), {"kid": kid}), "signed with 'HS256'")
    _refused(pk, jwt.encode(claims(), rsa_key(), "RS256", headers={"kid": "r1"}), "signature")
    _refused(pk, jwt.encode(claims(), keys["r1"], "RS256", headers={"kid": "zz"}), "kid")
    _refused(pk, jwt.encode(claims(), keys["r1"], "RS256"), "kid")
    _refused(pk, jwt.encode(claims(), keys["e1"], "ES256", headers={"kid": "r1"}),
             "signed with 'ES256'")
    _refused(pk, jwt.encode(claims(exp=now - 120), keys["r1"], "RS256", headers={"kid": "r1"}),
             "expired")


def test_scopes_are_parsed_strictly():
    assert parse_scopes("read:a write:b read:* openid profile") == {"read:a", "write:b", "read:*"}
    assert parse_scopes("read:../x read: admin:* read:a:b") == frozenset()
    assert parse_scopes(None) == frozenset()
    with pytest.raises(Unauthorized):
        parse_scopes(["read:a"])


def test_keys_that_cannot_be_used_are_refused(tmp_path, keys):
    short = tmp_path / "short"
    short.write_bytes(b"tooshort\n")
    with pytest.raises(ConfigError, match="at least 32"):
        Verifier.from_secret_file(str(short))
    with pytest.raises(ConfigError, match="cannot read"):
        Verifier.from_secret_file(str(tmp_path / "missing"))
    for doc in ({"keys": []}, {"nokeys": 1}, [1], {"keys": [{"kty": "oct", "k": "abcd"}]},
                jwks(("a", keys["r1"]), ("a", keys["e1"])),
                {"keys": [{**jwks(("x", keys["r1"]))["keys"][0], "alg": "RS512"}]}):
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(doc))
        with pytest.raises(ConfigError, match="not a usable key set"):
            Verifier.from_jwks_file(str(path))
