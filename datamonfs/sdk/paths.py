"""Paths inside a bundle, as the Python API and the fsspec filesystem take them: the one check.

A path is names separated by '/', relative to the bundle's root: `tables/2024.csv`. Empty
and '.' components are dropped (`a//b/./c` is `a/b/c`; "" and "." are the root). A
leading '/' and any '..' are refused (InvalidPath), so no path given to the API can name
anything outside the bundle, and every name is checked by core.rules as a bundle's entry
names are (at most 255 bytes of UTF-8, no NUL) with at most rules.MAX_DEPTH names.
"""

from __future__ import annotations

from ..core import rules
from ..errors import InvalidPath


def split_path(path: str) -> tuple[str, ...]:
    """The names of a bundle path; () for the root."""
    if not isinstance(path, str):
        raise InvalidPath(f"a bundle path must be text, not {type(path).__name__}")
    if path.startswith("/"):
        raise InvalidPath(f"{path[:200]!r}: bundle paths are relative to the bundle's root; "
                          "drop the leading '/'")
    names = tuple(n for n in path.split("/") if n not in ("", "."))
    if ".." in names:
        raise InvalidPath(f"{path[:200]!r}: '..' would leave the bundle")
    problem = rules.depth_problem(len(names))
    if problem is not None:
        raise InvalidPath(f"{path[:200]!r}: {problem}")
    for name in names:
        problem = rules.name_problem(name)
        if problem is not None:
            raise InvalidPath(f"{path[:200]!r}: {name[:100]!r} cannot be a name in a bundle "
                              f"({problem})")
    return names


def normalize(path: str) -> str:
    """The canonical form of a bundle path: 'a/b/c', '' for the root."""
    return "/".join(split_path(path))


def join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))
