"""What a file's page shows of it, from its first PREVIEW_BYTES: an image (loaded by the
browser from the API), the head of a CSV or TSV as a table, text, or nothing."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

PREVIEW_BYTES = 64 << 10
CSV_ROWS = 50
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml",
               "image/bmp")


@dataclass
class Preview:
    kind: str  # "image", "table", "text" or "none"
    rows: list[list[str]] | None = None
    text: str | None = None
    truncated: bool = False


def preview(path: str, content_type: str, head: bytes, size: int) -> Preview:
    base = content_type.split(";")[0]
    if base in IMAGE_TYPES:
        return Preview("image")
    truncated = size > len(head)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        # A multi-byte character cut at the end of the head is still text.
        if not truncated or e.start < len(head) - 3:
            return Preview("none")
        text = head[:e.start].decode("utf-8")
    if "\x00" in text:
        return Preview("none")
    lower = path.lower()
    if lower.endswith((".csv", ".tsv")):
        lines = text.splitlines()
        if truncated and lines:
            lines = lines[:-1]  # the last line may be cut
        reader = csv.reader(io.StringIO("\n".join(lines[:CSV_ROWS + 1])),
                            delimiter="\t" if lower.endswith(".tsv") else ",")
        try:
            rows = list(reader)
        except csv.Error:
            return Preview("text", text=text, truncated=truncated)
        return Preview("table", rows=rows, truncated=truncated or len(lines) > CSV_ROWS + 1)
    return Preview("text", text=text, truncated=truncated)
