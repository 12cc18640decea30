"""Who may do what: JSON Web Tokens checked against a key the server was given.

Two kinds of key, never both (an algorithm is bound to its key, so a token cannot
choose how it is checked):

    HS256   a shared secret file (at least 32 bytes; `datamonfs token create` signs with it)
    RS256, ES256   public keys from a JWKS file ({"keys": [...]}, RSA or EC P-256); a
            key's `kid` picks it when the file holds several

A token must carry `exp`, `iss` and `aud` (equal to what the server expects) and may
carry `nbf`; `scope` is a space-separated list as in OAuth 2.0 (RFC 8693 §4.2):
`read:REPO`, `write:REPO`, `read:*`, `write:*`. `write` does not imply `read`.

A request with no token or a bad one is `Unauthorized` (HTTP 401 with
`WWW-Authenticate: Bearer ...`, RFC 6750); a good token without the scope is
`Forbidden` (403). Messages never contain the token.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import jwt

from ..core.names import is_name
from ..errors import ConfigError

READ, WRITE = "read", "write"
ANY_REPO = "*"
MIN_SECRET_BYTES = 32  # RFC 7518 §3.2: an HS256 key of at least 256 bits
MAX_TOKEN_BYTES = 8192
LEEWAY_SECONDS = 30  # clock skew allowed on exp and nbf
DEFAULT_ISSUER = DEFAULT_AUDIENCE = "datamonfs"
JWKS_ALGORITHMS = {"RSA": "RS256", "EC": "ES256"}
MAX_JWKS_BYTES = 1 << 20


class Unauthorized(Exception):
    """No token, or one that does not check out: HTTP 401."""

    def __init__(self, reason: str, error: str | None = "invalid_token"):
        super().__init__(reason)
        self.error = error  # RFC 6750 error code; None when no token was given


class Forbidden(Exception):
    """A valid token without the scope a request needs: HTTP 403."""

    def __init__(self, reason: str, scope: str):
        super().__init__(reason)
        self.scope = scope


@dataclass(frozen=True)
class Grant:
    """What a checked token allows, and who it names."""

    subject: str | None
    scopes: frozenset[str]
    name: str | None = None
    email: str | None = None

    def allows(self, action: str, repo: str) -> bool:
        return f"{action}:{repo}" in self.scopes or f"{action}:{ANY_REPO}" in self.scopes

    def require(self, action: str, repo: str) -> None:
        if not self.allows(action, repo):
            scope = f"{action}:{repo}"
            raise Forbidden(f"this token has no {scope} scope", scope)


OPEN = Grant(None, frozenset({f"{READ}:{ANY_REPO}", f"{WRITE}:{ANY_REPO}"}))  # --auth none


def parse_scopes(text: object) -> frozenset[str]:
    """The `scope` claim: ACTION:REPO words separated by spaces; unknown words are
    ignored (a token may carry scopes of other services), malformed claims refused."""
    if text is None:
        return frozenset()
    if not isinstance(text, str) or len(text) > MAX_TOKEN_BYTES:
        raise Unauthorized("the scope claim is not a space-separated string")
    scopes = set()
    for word in text.split(" "):
        action, _, repo = word.partition(":")
        if action in (READ, WRITE) and (repo == ANY_REPO or is_name(repo)):
            scopes.add(word)
    return frozenset(scopes)


def check_scope_text(word: str) -> str:
    """A scope as `token create` takes it: ACTION:REPO or ACTION:*."""
    action, _, repo = word.partition(":")
    if action not in (READ, WRITE) or not (repo == ANY_REPO or is_name(repo)):
        raise ConfigError(f"invalid scope {word!r}: use read:REPO, write:REPO, read:* or write:*")
    return word


class Verifier:
    """Checks tokens with one kind of key (see the module)."""

    def __init__(self, keys: dict[str | None, tuple[object, str]], issuer: str, audience: str):
        self._keys = keys  # kid (None: the only key) -> (key, algorithm)
        self.issuer = issuer
        self.audience = audience

    @classmethod
    def from_secret_file(cls, path: str, issuer: str = DEFAULT_ISSUER,
                         audience: str = DEFAULT_AUDIENCE) -> "Verifier":
        return cls({None: (read_secret(path), "HS256")}, issuer, audience)

    @classmethod
    def from_jwks_file(cls, path: str, issuer: str = DEFAULT_ISSUER,
                       audience: str = DEFAULT_AUDIENCE) -> "Verifier":
        try:
            with open(path, "rb") as f:
                doc = json.loads(f.read(MAX_JWKS_BYTES + 1))
            raw = doc["keys"] if isinstance(doc, dict) else None
            if not isinstance(raw, list) or not raw:
                raise ValueError("no keys")
            keys: dict[str | None, tuple[object, str]] = {}
            for item in raw:
                jwk = jwt.PyJWK(item)
                algorithm = JWKS_ALGORITHMS.get(item.get("kty"))
                if algorithm is None or jwk.algorithm_name != algorithm:
                    raise ValueError(f"key type {item.get('kty')!r} with algorithm "
                                     f"{jwk.algorithm_name!r} (RS256 and ES256 are taken)")
                if algorithm == "ES256" and item.get("crv") != "P-256":
                    raise ValueError("an EC key must be on curve P-256 for ES256")
                kid = item.get("kid")
                if kid in keys or (len(raw) > 1 and not isinstance(kid, str)):
                    raise ValueError("several keys need distinct kid values")
                keys[kid if len(raw) > 1 else None] = (jwk.key, algorithm)
        except OSError as e:
            raise ConfigError(f"cannot read the JWKS file {path}: {e.strerror}") from None
        except (ValueError, KeyError, TypeError, jwt.PyJWTError) as e:
            raise ConfigError(f"the JWKS file {path} is not a usable key set: {e}") from None
        return cls(keys, issuer, audience)

    def verify(self, token: str) -> Grant:
        if len(token) > MAX_TOKEN_BYTES:
            raise Unauthorized("the token is too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("the token is not a JWT") from None
        kid = header.get("kid") if None not in self._keys else None
        if kid not in self._keys:
            raise Unauthorized("the token names no key this server knows (kid)")
        key, algorithm = self._keys[kid]
        if header.get("alg") != algorithm:
            raise Unauthorized(f"the token is signed with {str(header.get('alg'))[:20]!r}; "
                               f"this server takes {algorithm}")
        try:
            claims = jwt.decode(token, key, algorithms=[algorithm], audience=self.audience,
                                issuer=self.issuer, leeway=LEEWAY_SECONDS,
                                options={"require": ["exp", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("the token is not valid yet (nbf)") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized(f"the token is not for this server (aud must be "
                               f"{self.audience!r})") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized(f"the token's issuer is not {self.issuer!r}") from None
        except jwt.MissingRequiredClaimError as e:
            raise Unauthorized(f"the token has no {e.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("the token's signature does not match this server's key") from None
        except jwt.PyJWTError:
            raise Unauthorized("the token is malformed") from None
        return Grant(_text(claims.get("sub")), parse_scopes(claims.get("scope")),
                     _text(claims.get("name")), _text(claims.get("email")))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= 200 else None


def read_secret(path: str) -> bytes:
    """An HS256 secret file: its bytes without a final newline, at least 32 of them."""
    try:
        with open(path, "rb") as f:
            secret = f.read(1 << 16).rstrip(b"\r\n")
    except OSError as e:
        raise ConfigError(f"cannot read the secret file {path}: {e.strerror}") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(f"the secret file {path} holds {len(secret)} bytes; HS256 needs at "
                          f"least {MIN_SECRET_BYTES} (e.g. head -c 32 /dev/urandom | base64 > F)")
    return secret


def create_token(secret: bytes, scopes: list[str], ttl_seconds: int, subject: str | None = None,
                 issuer: str = DEFAULT_ISSUER, audience: str = DEFAULT_AUDIENCE,
                 now: float | None = None) -> str:
    """An HS256 token for `datamonfs token create` and the tests."""
    now = int(time.time() if now is None else now)
    claims: dict = {"iss": issuer, "aud": audience, "iat": now, "nbf": now,
                    "exp": now + ttl_seconds, "scope": " ".join(scopes),
                    "jti": os.urandom(8).hex()}
    if subject:
        claims["sub"] = subject
    return jwt.encode(claims, secret, algorithm="HS256")
