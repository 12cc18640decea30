"""Inode numbers as positions: (directory slot, entry index), no per-file state.

A bundle never changes, so an entry's position in its directory identifies it
for the life of a mount. An inode number packs the slot of the directory that
holds the entry (slots are given to directories when first visited) with the
entry's index in it. The table therefore grows with the directories visited,
never with the files seen: walking a million files keeps a few thousand slots,
however many inodes the kernel still remembers, and `forget` has nothing to free.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core import rules
from ..core.trees import Claims
from ..errors import IntegrityError
from .pages import Layout
from .vfs import ROOT  # slot 0 is reserved so no (slot, index) pair collides with it

INDEX_BITS = 32
MAX_INDEX = (1 << INDEX_BITS) - 1


@dataclass(slots=True)
class DirNode:
    ino: int
    parent: int  # inode of the parent directory (the root is its own parent)
    tree: str
    slot: int
    depth: int  # names between the root and it (the root: 0)
    claims: Claims  # the files and bytes its entry (the root: the bundle) says are below
    layout: Layout | None = None  # loaded on first visit
    subdirs: int | None = None  # its subdirectories, once counted (its link count is 2 more)


def child_ino(slot: int, index: int) -> int:
    if index > MAX_INDEX:
        raise OverflowError("directory too large for inode numbering")
    return (slot << INDEX_BITS) | index


def position(ino: int) -> tuple[int, int]:
    """(slot of the directory holding it, index in that directory)."""
    return ino >> INDEX_BITS, ino & MAX_INDEX


class InodeTable:
    def __init__(self, root_tree: str, claims: Claims):
        self._dirs: list[DirNode | None] = [None]
        self._slots: dict[int, int] = {}
        # A tree whose directories reference one another has no end: stop where the
        # rules say (core.rules.WalkBudget), before the table eats the memory.
        self._budget = rules.WalkBudget(claims[0])
        self.add_dir(ROOT, ROOT, root_tree, -1, claims)

    def add_dir(self, ino: int, parent: int, tree: str, parent_depth: int,
                claims: Claims) -> DirNode:
        slot = self._slots.get(ino)
        if slot is not None:
            return self._dirs[slot]
        problem = rules.depth_problem(parent_depth + 1) or self._budget.directory()
        if problem:
            raise IntegrityError(f"directory {tree[:12]}: {problem}")
        node = DirNode(ino, parent, tree, len(self._dirs), parent_depth + 1, claims)
        self._dirs.append(node)
        self._slots[ino] = node.slot
        return node

    def dir(self, ino: int) -> DirNode | None:
        """The directory with this inode, if it has been visited."""
        slot = self._slots.get(ino)
        return self._dirs[slot] if slot is not None else None

    def holder(self, ino: int) -> tuple[DirNode, int] | None:
        """The directory holding inode `ino`, and the index of its entry there."""
        slot, index = position(ino)
        if slot <= 0 or slot >= len(self._dirs):
            return None
        return self._dirs[slot], index

    def __len__(self) -> int:
        return len(self._dirs) - 1
