"""HTTP conditional and range requests on immutable files (RFC 9110 §13, §14).

A file of a bundle never changes, so its ETag is its content address and every
validator is strong. `plan` turns a request's headers into what to send:

    304   If-None-Match names the ETag (or is `*`)
    416   every range starts past the end (Content-Range: bytes */SIZE)
    206   one range, or several as multipart/byteranges (overlapping or adjacent ones
          merged first, at most MAX_RANGES of them)
    200   the whole file: no Range, an If-Range that does not match, a Range that is not
          of the `bytes=` grammar (ignored, as §14.2 allows), or too many ranges
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_RANGES = 16
MAX_HEADER = 4096  # a Range header longer than this is ignored
_SPEC = re.compile(r"\s*(?:(\d{1,19})-(\d{0,19})|-(\d{1,19}))\s*")


@dataclass(frozen=True)
class Plan:
    status: int  # 200, 206, 304 or 416
    ranges: tuple[tuple[int, int], ...] = ()  # [start, end) for 206


def etag_of(address: str) -> str:
    return f'"{address}"'


def parse_range(header: str, size: int) -> list[tuple[int, int]] | None:
    """`bytes=...` as [start, end) pieces clipped to `size`, merged and sorted; [] when
    none is satisfiable; None when the header is not a byte range set (to be ignored)."""
    if len(header) > MAX_HEADER:
        return None
    unit, eq, specs = header.partition("=")
    if not eq or unit.strip().lower() != "bytes":
        return None
    pieces = []
    for spec in specs.split(","):
        m = _SPEC.fullmatch(spec)
        if m is None:
            return None
        first, last, suffix = m.groups()
        if suffix is not None:
            n = int(suffix)
            if n > 0 and size > 0:
                pieces.append((max(size - n, 0), size))
            continue
        start = int(first)
        if last and int(last) < start:
            return None  # last-pos before first-pos: invalid, so the header is ignored
        end = min(int(last) + 1, size) if last else size
        if start < size:
            pieces.append((start, end))
    return _merge(pieces)


def _merge(pieces: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(pieces):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def etag_matches(header: str, etag: str) -> bool:
    """If-None-Match (weak comparison: W/ prefixes ignored) against the file's ETag."""
    if header.strip() == "*":
        return True
    tags = [t.strip() for t in header.split(",")]
    return any(t.removeprefix("W/") == etag for t in tags)


def plan(headers, size: int, etag: str) -> Plan:
    """What to answer for a GET of a file of `size` bytes with `etag`."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None and etag_matches(if_none_match, etag):
        return Plan(304)
    header = headers.get("range")
    if header is None:
        return Plan(200)
    if_range = headers.get("if-range")
    if if_range is not None and if_range.strip() != etag:
        return Plan(200)  # a strong comparison; a date never matches (no Last-Modified)
    ranges = parse_range(header, size)
    if ranges is None or len(ranges) > MAX_RANGES:
        return Plan(200)
    if not ranges:
        return Plan(416)
    return Plan(206, tuple(ranges))


def content_range(start: int, end: int, size: int) -> str:
    return f"bytes {start}-{end - 1}/{size}"
