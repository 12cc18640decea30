"""Keys and tokens for the JWT tests: RSA and EC key pairs, a JWKS of their public
halves, tokens signed any way a hostile client might."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


def jwks(*pairs) -> dict:
    """{"keys": [...]} of (kid, private key) pairs' public keys."""
    keys = []
    for kid, key in pairs:
        algo = jwt.algorithms.RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else \
            jwt.algorithms.ECAlgorithm
        jwk = json.loads(algo.to_jwk(key.public_key()))
        keys.append({**jwk, "kid": kid, "use": "sig"})
    return {"keys": keys}


def claims(scope: str = "read:*", **extra) -> dict:
    now = int(time.time())
    base = {"iss": "datamonfs", "aud": "datamonfs", "iat": now, "exp": now + 600,
            "scope": scope, "sub": "tester"}
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(payload: dict, header: dict | None = None) -> str:
    """alg: none."""
    head = {"alg": "none", "typ": "JWT", **(header or {})}
    return f"{_b64(json.dumps(head).encode())}." \
           f"{_b64(json.dumps(payload).encode())}."


def hs256_with(secret: bytes, payload: dict, header: dict | None = None) -> str:
    """HS256 signed by hand with any bytes as the secret (pyjwt refuses a PEM public key
    as an HMAC secret, which is what an algorithm-confusion attacker uses)."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", **(header or {})}).encode())
    body = _b64(json.dumps(payload).encode())
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(sig)}"


def public_pem(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
