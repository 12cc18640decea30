"""Shell completion of repos and refs (click's completion calls these; see `datamonfs --help`)."""

from __future__ import annotations

from click.shell_completion import CompletionItem


def _repository():
    from .common import open_repository

    return open_repository()


def complete_repo(ctx, param, incomplete: str) -> list[CompletionItem]:
    try:
        names = [r for r in _names(lambda repo: repo.store.list("repo/"), "repo/")]
    except Exception:  # completion never fails loudly: no store, no suggestions
        return []
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


def complete_ref(ctx, param, incomplete: str) -> list[CompletionItem]:
    """REPO: for a repo, REPO:NAME for its labels and branches."""
    if ":" not in incomplete:
        return [CompletionItem(f"{c.value}:", type="plain") for c in
                complete_repo(ctx, param, incomplete)] + complete_repo(ctx, param, incomplete)
    repo_name, _, partial = incomplete.partition(":")
    try:
        from ..core.repository import BRANCH, LABEL

        repository = _repository()
        names = {n for kind in (LABEL, BRANCH) for n in repository.ref_names(repo_name, kind)}
    except Exception:
        return []
    return [CompletionItem(f"{repo_name}:{n}") for n in sorted(names) if n.startswith(partial)]


def _names(list_keys, prefix: str) -> list[str]:
    repository = _repository()
    return sorted(k[len(prefix):] for k in list_keys(repository) if "/" not in k[len(prefix):])
