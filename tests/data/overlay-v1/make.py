"""How tests/data/overlay-v1 was made, by datamonfs at daa7c2c (overlay schema 1), with
    PYTHONPATH=. python tests/data/overlay-v1/make.py tests/data/overlay-v1
Kept to document the fixture; run by today's code it would write the current schema."""
import os
import shutil
import sys

from datamonfs.core import ingest
from datamonfs.core.repository import Author, Repository
from datamonfs.core.stores import open_store
from datamonfs.fs.overlay import Overlay, OverlayInfo
from datamonfs.fs.vfs import ROOT

out = sys.argv[1]
shutil.rmtree(out, ignore_errors=True)
os.makedirs(out)
src = os.path.join(out, "..", "overlay-v1-src")
shutil.rmtree(src, ignore_errors=True)
os.makedirs(os.path.join(src, "dir/sub"))


def w(rel, data, mode=0o644, t=1_600_000_000_000_000_000):
    p = os.path.join(src, rel)
    with open(p, "wb") as f:
        f.write(data)
    os.chmod(p, mode)
    os.utime(p, ns=(t, t))


w("a.txt", b"hello\n")
w("dir/x", b"x" * 1000)
w("dir/sub/y", b"y")
w("gone.txt", b"deleted in the overlay")
w("big.bin", bytes(range(256)) * 64)  # 16 KiB
os.symlink("a.txt", os.path.join(src, "link"))
ada = Author("Ada", "ada@example.org")
repo = Repository(open_store("file://" + os.path.join(out, "store")))
repo.create_repo("r", "", ada)
bundle, _ = ingest.upload(repo, "r", src, "base", ada)


class Content:
    def __init__(self, chunks):
        self.data = b"".join(repo.chunks.read_chunk(a, s) for a, s in chunks)

    def read(self, off, n):
        return self.data[off:off + n]


info = OverlayInfo("r", "main", bundle.id, bundle.tree, "/mnt/v1", 1_700_000_000.0, bundle.time, 0)
ov = Overlay.create_in(os.path.join(out, "overlay"), info, repo.trees, Content)
new = ov.create(ROOT, b"new.txt", 0o640)
ov.write(new.ino, 0, b"written through a v1 overlay\n")
a = ov.lookup(ROOT, b"big.bin")
ov.write(a.ino, 1000, b"PATCH")
ov.unlink(ROOT, b"gone.txt")
ov.rename(ROOT, b"dir", ROOT, b"moved")
d = ov.mkdir(ROOT, b"made", 0o750)
ov.symlink(d.ino, b"up", b"../a.txt")
x = ov.lookup(ROOT, b"a.txt")
ov.setattr(x.ino, mode=0o600, mtime=1_650_000_000_000_000_000)
held = ov.create(ROOT, b"open-unlinked", 0o644)
ov.open(held.ino)
ov.write(held.ino, 0, b"unlinked while open")
ov.unlink(ROOT, b"open-unlinked")   # nlink 0 row: a restart deletes it
ov.db.sync()
ov.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
ov.close()
print(bundle.id)
