"""Committing an overlay, and finishing a commit a crash interrupted.

Order, so that a kill at any point loses nothing and duplicates nothing:

    0. Overlay.flush          the open group of changes is committed to the database
    1. core.commit.prepare    chunks and trees stored; the bundle is known, unnamed
    2. Overlay.set_pending    the bundle record is kept in the overlay (fsynced)
    3. core.commit.publish    bundle record, then branch (and label) records
    4. Overlay.rebase         the overlay is emptied onto the new bundle

Killed before 2: the overlay is intact, stored objects are reused by the next
try. Killed after 2: the next open finishes 3 and 4 (`finish_pending`), so a
commit the user asked for is never half done, nor done twice.
"""

from __future__ import annotations

import os

from ...core.commit import CommitResult, bundle_id, prepare, publish
from ...core.model import Bundle, Entry, NO_PROVENANCE, Provenance
from ...core.repository import BRANCH, LABEL, Author, Repository
from ...errors import IntegrityError, NotFound
from .changes import describe
from .staged import OpenReader
from .overlay import DATA_DIR, DB_NAME, Overlay, OverlayInfo


def commit_overlay(ov: Overlay, repo: Repository, author: Author, message: str,
                   label: str | None = None, progress=None,
                   provenance: Provenance = NO_PROVENANCE) -> CommitResult:
    """Turn the staged changes into a bundle on the overlay's branch; empties the overlay.
    Callers keep writers out while it runs (the file system's write gate). `progress` is
    told the bytes cut as they are."""
    ov.flush()  # what it commits is in the database, so a kill from here on keeps it
    info = ov.info
    if label is not None:  # before anything is stored: a label may not take a branch's name
        repo.check_ref_name(info.repo, LABEL, label)
    parent = repo.get_bundle(info.repo, info.bundle) if info.bundle else None
    entries: dict[int, Entry] = {}

    def on_entry(ino: object, entry: Entry) -> None:
        if ino in ov.nodes:  # only what the kernel may still ask about
            entries[ino] = entry

    bundle, stats = prepare(repo, info.repo, parent, describe(ov), message, author, on_entry,
                            progress, provenance)
    if bundle is None:
        if parent is not None:  # changes that cancel out: start clean on the same bundle
            ov.rebase(parent, entries)
        return CommitResult(None, parent, None, stats)
    ov.set_pending({"id": bundle.id, "bundle": bundle.to_obj(), "branch": info.branch,
                    "label": label, "author": {"name": author.name, "email": author.email}})
    head = publish(repo, bundle, info.branch, author, label)
    ov.rebase(bundle, entries)
    return CommitResult(bundle, parent, head, stats)


def staged_bytes(ov: Overlay) -> int:
    """Bytes written into the overlay's files (allocated blocks of the data files, bytes
    kept in rows): what a commit will cut, roughly (it also re-cuts up to a chunk around
    each change)."""
    with ov.lock:
        total = ov.data.extents.row_bytes()
    with os.scandir(os.path.join(ov.dir, DATA_DIR)) as it:
        for entry in it:
            try:
                total += entry.stat(follow_symlinks=False).st_blocks * 512
            except OSError:
                pass
    return total


def finish_pending(ov: Overlay, repo: Repository) -> Bundle | None:
    """Complete a commit that was killed after its objects were stored; the bundle, if any."""
    record = ov.pending()
    if not record:
        return None
    bundle = Bundle.from_obj(record["bundle"], record["id"], "pending commit")
    author = Author(record["author"]["name"], record["author"]["email"])
    if bundle_id(bundle) != record["id"]:
        raise IntegrityError(f"the pending commit recorded in overlay {ov.dir} is damaged; "
                             "discard the overlay ('datamonfs unmount --discard')")
    label = record.get("label")
    if not any(r.bundle == bundle.id for r in repo.ref_log(bundle.repo, BRANCH, record["branch"])):
        publish(repo, bundle, record["branch"], author, label)
    elif label and getattr(repo.ref_head(bundle.repo, LABEL, label), "bundle", None) != bundle.id:
        repo.append_ref(bundle.repo, LABEL, label, bundle.id, author)
    ov.rebase(bundle, {})
    return bundle


def open_overlay(directory: str, repo: Repository, open_reader: OpenReader,
                 new_info: OverlayInfo | None = None) -> tuple[Overlay, Bundle | None]:
    """Open the overlay in `directory`, or create it from `new_info` when there is none.
    Finishes a commit a crash interrupted; returns the overlay and that commit's bundle."""
    if os.path.exists(os.path.join(directory, DB_NAME)):
        ov = Overlay(directory, repo.trees, open_reader)
        try:
            return ov, finish_pending(ov, repo)
        except BaseException:
            ov.close()
            raise
    if new_info is None:
        raise NotFound(f"no overlay in {directory}")
    return Overlay.create_in(directory, new_info, repo.trees, open_reader), None
