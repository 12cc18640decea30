"""The one path filter of every command (`--filter`): a glob on bundle paths.

`*` matches within one name (never `/`), `?` one character, `[...]` a class, and `**`
any number of whole names (`tables/**` is everything below tables/, `**/x.csv` an
x.csv at any depth). A pattern without `/` matches a name at any depth (`*.csv`), as
in .gitignore and rsync; a pattern with `/` is anchored at the bundle's root. A
pattern that names a directory matches everything below it (`tables` is `tables/**`).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Callable


def _segment(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1:i + 2] in ("!", "]") else i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"(?!/)[{body}]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


@lru_cache(maxsize=64)
def compile_glob(pattern: str) -> re.Pattern:
    anchored = "/" in pattern.rstrip("/")
    parts = [p for p in pattern.strip("/").split("/")]
    body = ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            body += ".*" if last else "(?:[^/]+/)*"
        else:
            body += _segment(part) + ("" if last else "/")
    prefix = "" if anchored else "(?:.*/)?"
    return re.compile(f"{prefix}{body}(?:/.*)?", re.DOTALL)


def matcher(pattern: str | None) -> Callable[[str], bool]:
    """A predicate on bundle paths (no leading '/'); None or "" matches everything."""
    if not pattern:
        return lambda path: True
    regex = compile_glob(pattern)
    return lambda path: regex.fullmatch(path) is not None


def fixed_prefix(pattern: str | None) -> str:
    """The leading whole names every match starts with ("tables/2024/" for
    "tables/2024/*.csv"; "" for an unanchored pattern): a walk may skip the rest."""
    if not pattern or "/" not in pattern.rstrip("/"):
        return ""
    names = pattern.strip("/").split("/")
    fixed = []
    for name in names[:-1]:
        if any(c in name for c in "*?["):
            break
        fixed.append(name)
    return "".join(n + "/" for n in fixed)
