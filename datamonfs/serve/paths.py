"""The one check of what a URL's path may say, before any route sees it.

ASGI servers hand an application the percent-decoded path, where `a%2Fb` has become
`a/b` and `%00` a NUL; so the check reads the raw path as it came over the wire. It
refuses (400, or 414 when too long):

- a path longer than MAX_RAW_PATH bytes, or not valid UTF-8 once decoded;
- an encoded `/` or `\\` (`%2F`, `%5C`), a NUL in any form, a control character;
- an empty segment (`a//b`), and `.` or `..` segments, also encoded (`%2e%2e`).

A bundle path taken from the URL is then checked by the Python API's path check
(bundle_path): each name one a bundle's entries may have (core/rules.py), so a path the
server accepts is one a bundle could hold, and nothing it names leads outside it.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from ..sdk.paths import normalize

MAX_RAW_PATH = 8192  # bytes of the path as sent, percent escapes included


class BadPath(Exception):
    def __init__(self, reason: str, status: int = 400):
        super().__init__(reason)
        self.status = status


def check_raw_path(raw: bytes) -> None:
    """Raises BadPath for a request path the server refuses to route (see the module)."""
    if len(raw) > MAX_RAW_PATH:
        raise BadPath(f"the path is longer than {MAX_RAW_PATH} bytes", 414)
    if not raw.startswith(b"/"):
        raise BadPath("the path must start with '/'")
    low = raw.lower()
    if b"%2f" in low or b"%5c" in low or b"\\" in raw:
        raise BadPath("encoded slashes and backslashes are not allowed in a path")
    segments = raw[1:].split(b"/")
    for i, segment in enumerate(segments):
        decoded = unquote_to_bytes(segment)
        if not decoded and i < len(segments) - 1:
            raise BadPath("empty path segments ('//') are not allowed")
        if decoded in (b".", b".."):
            raise BadPath("'.' and '..' are not allowed in a path")
        if any(c < 0x20 or c == 0x7F for c in decoded):
            raise BadPath("control characters (NUL among them) are not allowed in a path")
        try:
            decoded.decode("utf-8")
        except UnicodeDecodeError:
            raise BadPath("the path is not valid UTF-8 once decoded") from None


def bundle_path(text: str) -> str:
    """A path inside a bundle, from a URL ('' is the root; a trailing '/' is dropped):
    checked by the Python API's one path check (datamonfs/sdk/paths.py: each name one a
    bundle may hold, no '..', at most MAX_DEPTH names); InvalidPath (400) otherwise."""
    return normalize(text)
