"""The one canonical encoding of metadata objects, and their addresses.

Canonical JSON (sorted keys, no spaces, UTF-8) keeps stores readable by eye and
by any language; every record carries a version field `v` so later encodings
can be told apart. An object's address is the BLAKE3 hash of its encoding.
The encoding byte for byte, with test vectors: docs/FORMAT.md §4 (normative);
which record is written and read in which version: §10.
"""

from __future__ import annotations

import json
import re
from typing import Any

import blake3

from ..errors import IntegrityError

VERSION = 2  # the format this code writes
# The versions of each record this code reads, and the one it writes (the last): repo and
# ref records did not change in version 2, so version-1 readers still read them.
VERSIONS = {"tree": (1, 2), "chunks": (1, 2), "bundle": (1, 2), "packindex": (2,),
            "repo": (1,), "ref": (1,)}
MAX_OBJECT = 64 * 1024 * 1024  # larger metadata is refused as hostile
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def address(data: bytes | memoryview) -> str:
    return blake3.blake3(data).hexdigest()


def is_address(text: object) -> bool:
    return isinstance(text, str) and bool(_HEX64.fullmatch(text))


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def written_version(kind: str) -> int:
    """The version this code writes records of `kind` in."""
    return VERSIONS[kind][-1]


def decode(data: bytes, kind: str, where: str) -> dict[str, Any]:
    """Parse an untrusted record; it must be a dict of the expected type and of a version
    this code reads (its `v` tells the caller which)."""
    if len(data) > MAX_OBJECT:
        raise IntegrityError(f"{where}: metadata object too large ({len(data)} bytes)")
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise IntegrityError(f"{where}: not a valid metadata object ({type(e).__name__})") from None
    if not isinstance(obj, dict) or obj.get("type") != kind:
        raise IntegrityError(f"{where}: expected a {kind} record")
    if type(obj.get("v")) is not int or obj["v"] not in VERSIONS[kind]:  # true == 1 in Python
        raise IntegrityError(f"{where}: unsupported {kind} record version {obj.get('v')!r}; "
                             "upgrade datamonfs")
    return obj


def field(obj: dict, name: str, types, where: str):
    """A record's field, of one of `types`; text must be valid UTF-8 (JSON can carry lone
    surrogates, which no file name, terminal or encoder accepts)."""
    value = obj.get(name)
    if not isinstance(value, types) or isinstance(value, bool) and bool not in _tuple(types):
        raise IntegrityError(f"{where}: field {name!r} is missing or of the wrong type")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise IntegrityError(f"{where}: field {name!r} is not valid UTF-8") from None
    return value


def _tuple(types):
    return types if isinstance(types, tuple) else (types,)
