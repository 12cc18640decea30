"""InPlaceReader: a local store's chunks read in place, checked on every read."""

from __future__ import annotations

import os
import random

import pytest
from support.pagecache import out_of_memory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datamonfs.cache import in_place
from datamonfs.cache.nowait import WouldBlock
from datamonfs.cache.in_place import InPlaceReader, reads_in_place
from datamonfs.core.chunks import ChunkRef, ChunkStore
from datamonfs.core.encoding import address
from datamonfs.core.stores.local import LocalStore
from datamonfs.errors import IntegrityError
from datamonfs.fs.mountinfo import MountEntry

PACK = "ab" * 32


def make_store(root) -> tuple[InPlaceReader, list[ChunkRef], dict[str, bytes]]:
    """A pack of 12 chunks with a gap of 0-3 KiB before each, and one loose chunk."""
    rnd = random.Random(7)
    store = LocalStore(str(root))
    pack, refs, data = bytearray(), [], {}
    for _ in range(12):
        pack += rnd.randbytes(rnd.choice((0, 100, 3000)))
        chunk = rnd.randbytes(rnd.randint(1, 70_000))
        refs.append(ChunkRef(address(chunk), len(chunk), PACK, len(pack)))
        data[refs[-1].addr] = chunk
        pack += chunk
    store.put(ChunkStore.pack_key(PACK), bytes(pack))
    loose = rnd.randbytes(5000)
    refs.append(ChunkRef(address(loose), len(loose)))
    data[refs[-1].addr] = loose
    store.put(ChunkStore.loose_key(refs[-1].addr), loose)
    return InPlaceReader(ChunkStore(store)), refs, data


@pytest.fixture
def packed(tmp_path):
    return make_store(tmp_path / "store")


def flip(path: str, at: int) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x40]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(picks=st.lists(st.integers(0, 12), min_size=1, max_size=8), cut=st.data())
def test_reads_answer_the_bytes_of_the_chunks(packed, picks, cut):
    reader, refs, data = packed
    chosen = [refs[i] for i in picks]  # repeats, gaps, other packs and loose chunks mixed
    want = b"".join(data[r.addr] for r in chosen)
    assert reader.read_cached(chosen) == want
    assert reader.read_chunks(chosen) == [data[r.addr] for r in chosen]
    ref = chosen[0]
    start = cut.draw(st.integers(0, ref.size))
    end = cut.draw(st.integers(start, ref.size))
    assert reader.read_range(ref, start, end) == data[ref.addr][start:end]
    try:  # on the event loop: the same bytes, or a thread must read them
        assert reader.read_cached(chosen, nowait=True) == want
    except WouldBlock:
        pass


def test_nowait_declines_what_is_not_in_memory(packed):
    reader, refs, data = packed
    path = reader.store.path(ChunkStore.pack_key(PACK))
    reader.read_cached(refs[:4])
    assert reader.read_cached(refs[:4], nowait=True) == b"".join(data[r.addr] for r in refs[:4])
    out_of_memory(path)
    with pytest.raises(WouldBlock):
        reader.read_cached(refs[:4], nowait=True)
    assert reader.read_cached(refs[:4]) == b"".join(data[r.addr] for r in refs[:4])


def test_damage_is_never_served(packed):
    reader, refs, data = packed
    flip(reader.store.path(ChunkStore.pack_key(PACK)), refs[3].offset + 17)
    assert reader.read_cached(refs[:3]) == b"".join(data[r.addr] for r in refs[:3])
    for read in (lambda: reader.read_cached(refs[2:5]), lambda: reader.read_chunk(refs[3]),
                 lambda: reader.read_range(refs[3], 0, 1),
                 lambda: reader.read_cached(refs[3:4], nowait=True)):
        with pytest.raises(IntegrityError, match=f"chunk {refs[3].addr} at offset "
                           f"{refs[3].offset} of pack {PACK} is corrupt in the store"):
            read()


def test_a_short_or_missing_object_is_an_integrity_error(packed):
    reader, refs, _ = packed
    os.truncate(reader.store.path(ChunkStore.pack_key(PACK)), refs[5].offset + 10)
    assert len(reader.read_cached(refs[:5])) == sum(r.size for r in refs[:5])
    with pytest.raises(IntegrityError, match=f"chunk {refs[5].addr} .* ends before it"):
        reader.read_cached(refs[4:7])
    with pytest.raises(WouldBlock):  # the loop cannot tell short from not in memory
        reader.read_cached(refs[5:6], nowait=True)
    os.unlink(reader.store.path(ChunkStore.loose_key(refs[12].addr)))
    with pytest.raises(IntegrityError, match=f"chunk {refs[12].addr} is missing from the store"):
        reader.read_chunk(refs[12])
    elsewhere = refs[0]._replace(pack="cd" * 32)
    with pytest.raises(IntegrityError, match=f"pack {'cd' * 32} holding chunk .* is missing"):
        reader.read_chunk(elsewhere)


def test_only_local_stores_on_local_file_systems_are_read_in_place(tmp_path, monkeypatch):
    store = LocalStore(str(tmp_path / "store"))
    assert reads_in_place(store)  # tmp_path is on a local disk here
    assert not reads_in_place(object())
    for fstype, local in (("nfs4", False), ("fuse.sshfs", False), ("cifs", False),
                          ("xfs", True), ("fuseblk", True)):
        table = [MountEntry("/", "0:1", "ext4", "/dev/vda"),
                 MountEntry(str(tmp_path), "0:2", fstype, "server:/x"),
                 MountEntry(str(tmp_path) + "-other", "0:3", "nfs", "server:/y")]
        monkeypatch.setattr(in_place.mountinfo, "mounts", lambda table=table: table)
        assert reads_in_place(store) is local, fstype
