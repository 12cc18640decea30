"""Names of repos, labels and branches, and the REPO:REF grammar."""

from __future__ import annotations

import re

from ..errors import InvalidName

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
DEFAULT_BRANCH = "main"


def check_name(name: str, what: str = "name") -> str:
    """Repo, label and branch names: letters, digits, '.', '_', '-', starting with a letter or digit."""
    if not is_name(name):
        raise InvalidName(
            f"invalid {what} {name!r}: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit")
    return name


def is_name(text: object) -> bool:
    return isinstance(text, str) and bool(_NAME.fullmatch(text)) and ".." not in text


def parse_ref(text: str) -> tuple[str, str | None]:
    """'REPO:REF' -> (repo, ref); 'REPO' -> (repo, None), meaning the head of main."""
    repo, sep, ref = text.partition(":")
    check_name(repo, "repo name")
    if sep and not ref:
        raise InvalidName(f"invalid ref {text!r}: nothing after ':'; use REPO:LABEL, REPO:BRANCH or REPO:BUNDLE-ID")
    return repo, (ref if sep else None)


def parse_branch_ref(text: str) -> tuple[str, str]:
    """'REPO:BRANCH' or 'REPO' (branch main) -> (repo, branch)."""
    repo, ref = parse_ref(text)
    return repo, check_name(ref or DEFAULT_BRANCH, "branch name")
