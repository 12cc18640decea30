"""Making folders, and describing a folder or a bundle's tree to compare them."""

from __future__ import annotations

import hashlib
import os
import stat


def write(root, rel: str, data: bytes, mode: int = 0o644) -> str:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def user_xattrs(path: str) -> tuple:
    """The user.* extended attributes of `path` (not followed), as a bundle entry keeps
    them: (name, value) pairs sorted by name."""
    names = sorted(n for n in os.listxattr(path, follow_symlinks=False) if n.startswith("user."))
    return tuple((n, os.getxattr(path, n, follow_symlinks=False)) for n in names)


def snapshot(root, mtimes: bool = True) -> dict:
    """Everything datamonfs promises to keep of a folder, by relative path: a directory's
    mode; a file's mode, size, bytes (as a digest) and, with `mtimes`, mtime; a link's
    target; the user.* extended attributes of files and directories that have some.
    Directories and links are not followed."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                with open(path, "rb") as f:
                    digest = _digest(f.read())
                out[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_size, digest,
                            st.st_mtime_ns if mtimes else None)
            if not stat.S_ISLNK(st.st_mode) and (xattrs := user_xattrs(path)):
                out[rel] += (xattrs,)
    return out


def tree_snapshot(repo, tree: str, prefix: str = "", mtimes: bool = False) -> dict:
    """The same description of a bundle's tree, read from the store."""
    from datamonfs.core.model import DIR, LINK

    out = {}
    for entry in repo.trees.entries(tree):
        rel = prefix + entry.name
        if entry.kind == DIR:
            out[rel] = ("dir", entry.mode)
            out.update(tree_snapshot(repo, entry.tree, rel + "/", mtimes))
        elif entry.kind == LINK:
            out[rel] = ("link", entry.target)
        else:
            data = b"".join(repo.chunks.read_chunks(repo.trees.chunks(entry)))
            out[rel] = ("file", entry.mode, entry.size, _digest(data),
                        entry.mtime if mtimes else None)
        if entry.xattrs:
            out[rel] += (entry.xattrs,)
    return out
