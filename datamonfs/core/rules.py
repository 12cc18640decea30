"""What a bundle may contain: the one place that says so.

Upload, download, commit, the writable overlay and the mounts all ask here, so a
bundle one of them accepts is a bundle every other one can serve. Each check
returns None when the value is allowed, else a `Problem`: a reason (for a
message) and the errno a file system would answer. Callers wrap it in their own
error (IntegrityError for store content, a user error for an upload, FsError in
a mount), so the rule itself is written once.

Symlinks. A target is relative; all its ".." components come first, and there
are no more of them than the directories between the bundle's root and the
link. So `../shared/x` is fine in `a/`, and `x/../y` is refused anywhere. This
local rule is enough to keep every link inside the bundle, also through other
links: resolution starts in the link's directory, climbs at most to the root,
then only descends; a link met on the way down is followed from its own
directory, where the same rule holds. (Checking a target as text against its
path is not enough: with `l -> .` the target `l/../..` climbs one level more
than it reads.) Nothing has to be looked up, so the rule costs the same for one
link as in a bundle of a million.

Extended attributes. An entry may carry `user.*` attributes, sized as ext4 sizes
them: a name of at most 255 bytes, a value of at most 64 KiB, and all names and
values of one entry together at most 64 KiB. Other namespaces (`security.*`,
`system.*`, `trusted.*`) mean something only on the machine that set them, and
`user.datamonfs.*` names what a read-only mount reports about itself: neither is
kept. Symlinks carry none (Linux refuses `user.*` on them).

Totals. A directory entry carries the bytes and files below it, and the bundle
record those of its root. Readers check that a directory's entries add up to
what its entry claims before they descend into it, so the work a hostile tree
can cause (directories referencing one another: 25 objects make 2**24 paths) is
bounded by what the bundle record claims.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

MAX_NAME_BYTES = 255
MAX_TARGET_BYTES = 4095  # what symlink(2) takes (PATH_MAX with its NUL)
MAX_DEPTH = 256  # names in a path
MAX_CHUNK_BYTES = 64 << 20  # a chunk reference claiming more is hostile
# Directories carry no count of the directories below them; a walk meeting more
# directories than this beyond the bundle's files stops (a tree of empty
# directories referencing one another would otherwise never end).
MAX_EXTRA_DIRS = 1_000_000
MODE_BITS = 0o7777
PRIVILEGE_BITS = 0o6000  # setuid, setgid: never given to what a download writes
TIME_MIN, TIME_MAX = -(1 << 63), (1 << 63) - 1  # nanoseconds, as stat keeps them
SIZE_MAX = (1 << 63) - 1
XATTR_NAMESPACE = b"user."
RESERVED_XATTRS = b"user.datamonfs."  # what a read-only mount says about itself
MAX_XATTR_NAME_BYTES = 255
MAX_XATTR_VALUE_BYTES = 64 << 10
MAX_XATTR_BYTES = 64 << 10  # all names and values of one entry
# What produced a bundle (its optional `inputs` and `process`): bounded, so that a
# bundle record stays small whatever a command line or a pipeline looks like.
MAX_INPUTS = 1000
MAX_COMMAND_ARGS = 4096
MAX_PROCESS_BYTES = 64 << 10  # every text of a bundle's `process`, in UTF-8, together


@dataclass(frozen=True)
class Problem:
    """Why a value is not allowed in a bundle, and the errno a file system answers."""

    reason: str
    errno: int = errno.EINVAL

    def __str__(self) -> str:
        return self.reason


def _utf8(text: str | bytes) -> bytes | None:
    """The strict UTF-8 bytes of a name or target; None when it has none."""
    try:
        if isinstance(text, bytes):
            text.decode("utf-8")
            return text
        return text.encode("utf-8")
    except UnicodeError:
        return None


def name_problem(name: object) -> Problem | None:
    """Entry names: 1-255 bytes of UTF-8, not '.' or '..', no '/' or NUL."""
    # Asked of every entry of every page a mount lists, so ASCII text (most names) is
    # checked as it is: its UTF-8 is one byte a character. Other names are checked as
    # text too, once they are known to be UTF-8: '/' and NUL are one byte in UTF-8 and
    # never part of another character's bytes.
    if isinstance(name, str) and name.isascii():
        size = len(name)
    elif not isinstance(name, (str, bytes)):
        return Problem("a name must be a string")
    else:
        raw = _utf8(name)
        if raw is None:
            return Problem("the name is not valid UTF-8", errno.EILSEQ)
        size, name = len(raw), raw.decode("utf-8")
    if size > MAX_NAME_BYTES:
        return Problem(f"the name is longer than {MAX_NAME_BYTES} bytes", errno.ENAMETOOLONG)
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        return Problem("the name is empty, '.', '..', or holds '/' or NUL")
    return None


def link_problem(target: object, depth: int) -> Problem | None:
    """A symlink target, for a link in a directory `depth` names below the root."""
    if not isinstance(target, (str, bytes)):
        return Problem("a link target must be a string")
    raw = _utf8(target)
    if raw is None:
        return Problem("the target is not valid UTF-8", errno.EILSEQ)
    if not raw:
        return Problem("the target is empty", errno.ENOENT)
    if b"\0" in raw:
        return Problem("the target holds NUL")
    if len(raw) > MAX_TARGET_BYTES:
        return Problem(f"the target is longer than {MAX_TARGET_BYTES} bytes", errno.ENAMETOOLONG)
    if raw.startswith(b"/"):
        return Problem("the target is absolute: it points outside the dataset",
                       errno.EPERM)
    climbs, descended = 0, False
    for part in raw.split(b"/"):
        if part in (b"", b"."):
            continue
        if part != b"..":
            descended = True
        elif descended:
            return Problem("the target climbs ('..') after naming a directory; write it "
                           "with every '..' first", errno.EPERM)
        else:
            climbs += 1
    if climbs > depth:
        return Problem("the target points outside the dataset", errno.EPERM)
    return None


def xattr_name_problem(name: object) -> Problem | None:
    """An extended attribute's name: `user.` and more, at most 255 bytes of UTF-8."""
    if not isinstance(name, (str, bytes)):
        return Problem("an attribute name must be a string")
    raw = _utf8(name)
    if raw is None:
        return Problem("the attribute name is not valid UTF-8", errno.EILSEQ)
    if not raw.startswith(XATTR_NAMESPACE) or raw.startswith(RESERVED_XATTRS):
        return Problem("only user.* attributes are kept (not user.datamonfs.*)",
                       errno.EOPNOTSUPP)
    if len(raw) == len(XATTR_NAMESPACE) or b"\0" in raw:
        return Problem("the attribute name is empty or holds NUL")
    if len(raw) > MAX_XATTR_NAME_BYTES:
        return Problem(f"the attribute name is longer than {MAX_XATTR_NAME_BYTES} bytes",
                       errno.ERANGE)
    return None


def xattr_value_problem(value: object) -> Problem | None:
    if not isinstance(value, bytes):
        return Problem("an attribute value must be bytes")
    if len(value) > MAX_XATTR_VALUE_BYTES:
        return Problem(f"the attribute value is larger than {MAX_XATTR_VALUE_BYTES} bytes",
                       errno.E2BIG)
    return None


def xattrs_problem(kind: str, xattrs: "tuple[tuple[str, bytes], ...]") -> Problem | None:
    """All the attributes of one entry: each allowed, names unique and in order, their
    bytes within MAX_XATTR_BYTES, and none on a symlink."""
    if xattrs and kind == "link":
        return Problem("a symlink carries no extended attributes", errno.EPERM)
    total, last = 0, None
    for name, value in xattrs:
        problem = xattr_name_problem(name) or xattr_value_problem(value)
        if problem:
            return problem
        if last is not None and name <= last:
            return Problem("attribute names repeated or out of order")
        last = name
        total += len(name.encode("utf-8")) + len(value)
    if total > MAX_XATTR_BYTES:
        return Problem(f"the attributes of one entry exceed {MAX_XATTR_BYTES} bytes",
                       errno.ENOSPC)
    return None


def depth_of(path: str) -> int:
    """Names above an entry at `path` ('a/b/l' is in a directory of depth 2)."""
    return path.count("/")


def mode_problem(mode: object) -> Problem | None:
    if type(mode) is not int or not 0 <= mode <= MODE_BITS:
        return Problem("mode out of range")
    return None


def time_problem(ns: object) -> Problem | None:
    if type(ns) is not int or not TIME_MIN <= ns <= TIME_MAX:
        return Problem("time out of range")
    return None


def size_problem(size: object) -> Problem | None:
    if type(size) is not int or not 0 <= size <= SIZE_MAX:
        return Problem("size out of range")
    return None


def chunk_size_problem(size: object) -> Problem | None:
    if type(size) is not int or not 0 < size <= MAX_CHUNK_BYTES:
        return Problem("chunk size out of range")
    return None


def depth_problem(depth: int) -> Problem | None:
    """For a path of `depth` names."""
    if depth > MAX_DEPTH:
        return Problem(f"the tree is more than {MAX_DEPTH} levels deep", errno.ENAMETOOLONG)
    return None


def inputs_problem(inputs: object) -> Problem | None:
    """A bundle's `inputs`: a list of 1 to MAX_INPUTS items (their fields are the record's)."""
    if not isinstance(inputs, list) or not 0 < len(inputs) <= MAX_INPUTS:
        return Problem(f"inputs must be a list of 1 to {MAX_INPUTS} bundles")
    return None


def process_problem(command: object, *texts: object) -> Problem | None:
    """A bundle's `process`: a command line of 1 to MAX_COMMAND_ARGS arguments, and its
    other texts (host, notebook, code_version, description): all UTF-8 text without NUL,
    at most MAX_PROCESS_BYTES of UTF-8 together."""
    if not isinstance(command, list) or not 0 < len(command) <= MAX_COMMAND_ARGS:
        return Problem(f"the command must be a list of 1 to {MAX_COMMAND_ARGS} arguments")
    total = 0
    for text in [*command, *texts]:
        raw = _utf8(text) if isinstance(text, str) else None
        if raw is None or b"\0" in raw:
            return Problem("the command's arguments, host, notebook, code version and "
                           "description must be UTF-8 text without NUL")
        total += len(raw)
    if total > MAX_PROCESS_BYTES:
        return Problem(f"the process (command line, host, notebook, code version, "
                       f"description) is longer than {MAX_PROCESS_BYTES} bytes")
    return None


def safe_mode(mode: int) -> int:
    """The mode a download gives a file or directory: setuid and setgid stripped."""
    return mode & MODE_BITS & ~PRIVILEGE_BITS


class Totals:
    """Files and bytes below a directory, added up entry by entry (directories count
    what is below them, symlinks count as files of no bytes). The writer records
    them; readers compare them with what the directory's entry claims."""

    __slots__ = ("files", "bytes")

    def __init__(self) -> None:
        self.files = 0
        self.bytes = 0

    def add(self, kind: str, size: int, files_below: int) -> None:
        if kind == "dir":
            self.files += files_below
            self.bytes += size
        else:
            self.files += 1
            if kind == "file":
                self.bytes += size

    def problem(self, files: int, size: int) -> Problem | None:
        if (self.files, self.bytes) != (files, size):
            return Problem(f"holds {self.files} files and {self.bytes} bytes, but its entry "
                           f"claims {files} and {size}")
        return None


class WalkBudget:
    """Bounds a walk of a bundle by what its record claims: directories beyond its
    files plus MAX_EXTRA_DIRS are refused."""

    __slots__ = ("left",)

    def __init__(self, files: int) -> None:
        self.left = files + MAX_EXTRA_DIRS

    def directory(self) -> Problem | None:
        self.left -= 1
        if self.left < 0:
            return Problem("the bundle holds far more directories than files")
        return None
