"""Records as the API returns them: the Python API's JSON (the CLI's --json), bundles
with the branches and labels naming them."""

from __future__ import annotations

from ..sdk import Bundle


def bundle_json(b: Bundle, names: dict[str, dict[str, list[str]]]) -> dict:
    """`names`: Repo.decorations()."""
    named = names.get(b.id, {})
    return {**b.to_json(), "branches": named.get("branches", []),
            "labels": named.get("labels", [])}
