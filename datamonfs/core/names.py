"""Names of repos, labels and branches, and the REPO:REF[~N] grammar."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidName

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_ANCESTRY = re.compile(r"(~[0-9]{0,6})+$")  # ~, ~2, ~1~3 (at most 999999 generations each)
DEFAULT_BRANCH = "main"
MIN_PREFIX = 4  # hex digits of a bundle id prefix


def check_name(name: str, what: str = "name") -> str:
    """Repo, label and branch names: letters, digits, '.', '_', '-', starting with a letter or digit."""
    if not is_name(name):
        raise InvalidName(
            f"invalid {what} {name!r}: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit")
    return name


def is_name(text: object) -> bool:
    return isinstance(text, str) and bool(_NAME.fullmatch(text)) and ".." not in text


def is_hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789abcdef" for c in text)


@dataclass(frozen=True)
class Ref:
    """REPO:REF~N parsed: `ref` None means the head of main; `back` generations up the
    first parents (git's and lakectl's REF~N)."""

    repo: str
    ref: str | None
    back: int = 0


def split_ref(text: str) -> Ref:
    """'REPO:REF~N' -> Ref. '~' alone is '~1'; several add up ('v1~2~1' is 'v1~3')."""
    if not isinstance(text, str):
        raise InvalidName(f"invalid ref {text!r}")
    back = 0
    m = _ANCESTRY.search(text)
    if m:
        back = sum(int(step or 1) for step in m.group(0).split("~")[1:])
        text = text[:m.start()]
    repo, sep, ref = text.partition(":")
    check_name(repo, "repo name")
    if sep and not ref:
        raise InvalidName(f"invalid ref {text!r}: nothing after ':'; use REPO:LABEL, "
                          "REPO:BRANCH or REPO:BUNDLE-ID")
    return Ref(repo, ref if sep else None, back)


def parse_ref(text: str) -> tuple[str, str | None]:
    """'REPO:REF' -> (repo, ref); 'REPO' -> (repo, None), meaning the head of main.
    Refs that name a place to write (a branch) take no ~N."""
    r = split_ref(text)
    if r.back:
        raise InvalidName(f"{text!r} names an ancestor (~N); give a branch, REPO:BRANCH")
    return r.repo, r.ref


def parse_branch_ref(text: str) -> tuple[str, str]:
    """'REPO:BRANCH' or 'REPO' (branch main) -> (repo, branch)."""
    repo, ref = parse_ref(text)
    return repo, check_name(ref or DEFAULT_BRANCH, "branch name")
