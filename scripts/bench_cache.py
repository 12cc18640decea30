"""The block cache, measured through its API (FileReader, sequential 1 MiB reads).

(a) read of a file whose chunks are all cached, beside reading the same bytes
    from a plain file on the same disk: from the page cache, and from disk after
    dropping the page cache (when root); target >= 0.8x;
(b) cold read (empty cache) vs warm read from a local store; from the GCS
    emulator and from a local store made 20 ms slower per read (a modelled cloud
    round trip), read-ahead fetching in parallel beside fetching the chunks one at
    a time (and beside the raw google-cloud-storage client on the same objects);
(c) a read of 3x the cache limit: the cache stays within its limit, counters add
    up, and RSS stays flat.

Defaults (2 GiB file, 64 MiB through the emulator) take a few minutes;
--size and --gcs-size (MiB) scale them.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchsuite.common import REPO_ROOT, can_drop_caches, drop_caches, scratch  # noqa: E402

sys.path.insert(0, REPO_ROOT)
from datamonfs.cache import BlockCache, CachedChunkReader, FileReader  # noqa: E402
from datamonfs.cache.index import CacheIndex  # noqa: E402
from datamonfs.core import ingest  # noqa: E402
from datamonfs.core.chunks import ChunkStore  # noqa: E402
from datamonfs.core.repository import Author, Repository  # noqa: E402
from datamonfs.core.stores import open_store  # noqa: E402
from datamonfs.core.stores.base import ForwardingStore  # noqa: E402

MiB = 1 << 20
READ = MiB


def make_file(path: str, size: int) -> None:
    rng = random.Random(3)
    with open(path, "wb") as f:
        for off in range(0, size, 64 * MiB):
            f.write(rng.randbytes(min(64 * MiB, size - off)))


def upload(store_url: str, src_dir: str) -> tuple[Repository, list[tuple[str, int]]]:
    repo = Repository(open_store(store_url))
    repo.create_repo("bench", "", Author("bench", "bench@example.org"))
    bundle, _ = ingest.upload(repo, "bench", src_dir, "bench", Author("bench", "bench@example.org"))
    ((_, entry),) = [(p, e) for p, e in repo.walk(bundle) if e.kind == "file"]
    return repo, repo.trees.chunks(entry)


def read_plain(path: str) -> float:
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.read(READ):
            pass
    return time.perf_counter() - start


def read_file(reader: CachedChunkReader, chunks, limit: int | None = None, sample=None) -> float:
    f = FileReader(reader, chunks)
    end = min(f.size, limit or f.size)
    start = time.perf_counter()
    for off in range(0, end, READ):
        data = f.read(off, READ)
        assert len(data) == min(READ, end - off)
        if sample and off % (64 * MiB) == 0:
            sample()
    return time.perf_counter() - start


def serial_fetch(chunk_store: ChunkStore, chunks) -> float:
    start = time.perf_counter()
    for ref in chunks:
        chunk_store.read_chunk(ref)
    return time.perf_counter() - start


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def open_cache(directory: str, limit: int) -> BlockCache:
    return BlockCache(CacheIndex(directory), limit)


def close_cache(cache: BlockCache) -> None:
    cache.close()
    cache.index.close()


def read_whole_chunks(reader: CachedChunkReader, chunks) -> float:
    """One read per chunk: how the FUSE layer reads through FileReader."""
    f = FileReader(reader, chunks)
    start = time.perf_counter()
    off = 0
    for ref in chunks:
        f.read(off, ref.size)
        off += ref.size
    return time.perf_counter() - start


def bench_local(work: str, size: int, rows: list) -> None:
    src = os.path.join(work, "src")
    os.makedirs(src)
    plain = os.path.join(src, "file.bin")
    print(f"making a {size // MiB} MiB file and uploading it to a local store...", flush=True)
    make_file(plain, size)
    repo, chunks = upload("file://" + os.path.join(work, "store"), src)
    gbs = lambda seconds, n=size: f"{n / seconds / 1e9:.2f} GB/s"  # noqa: E731
    label = f"{size // MiB} MiB"

    cache = open_cache(os.path.join(work, "cache"), size + size // 2)
    reader = CachedChunkReader(cache, repo.chunks)
    os.sync()
    cold = read_file(reader, chunks)
    os.sync()
    warm = min([read_file(reader, chunks) for _ in range(3)])
    whole = min([read_whole_chunks(reader, chunks) for _ in range(3)])
    plain_t = min([read_plain(plain) for _ in range(3)])
    rows += [
        ["(a) plain file, 1 MiB reads, page cache", label, gbs(plain_t), "1.00 (reference)"],
        ["(a) cached, FileReader 1 MiB reads", label, gbs(warm), f"{plain_t / warm:.2f} x plain"],
        ["(a) cached, FileReader whole chunks", label, gbs(whole), f"{plain_t / whole:.2f} x plain"],
    ]
    if can_drop_caches():  # the same two reads from disk, not from the page cache
        drop_caches()
        plain_disk = read_plain(plain)
        drop_caches()
        warm_disk = read_file(reader, chunks)
        rows += [
            ["(a) plain file, 1 MiB reads, from disk", label, gbs(plain_disk), "1.00 (reference)"],
            ["(a) cached, FileReader 1 MiB, from disk", label, gbs(warm_disk),
             f"{plain_disk / warm_disk:.2f} x plain"],
        ]
    reader.close()
    close_cache(cache)
    rows += [
        ["(b) local store, cold (empty cache)", label, gbs(cold), "1.00 (reference)"],
        ["(b) local store, warm", label, gbs(warm), f"{cold / warm:.2f} x cold"],
    ]
    shutil.rmtree(os.path.join(work, "cache"))
    bench_bounded(work, repo, chunks, size, rows)
    bench_latency(work, chunks, min(size, 64 * MiB), rows)


def bench_bounded(work: str, repo: Repository, chunks, size: int, rows: list) -> None:
    """(c) a cache an eighth of the file, read for 3x its limit."""
    limit = max(64 * MiB, size // 8)
    span = min(size, 3 * limit)
    cache = open_cache(os.path.join(work, "small-cache"), limit)
    reader = CachedChunkReader(cache, repo.chunks)
    os.sync()
    rss, sizes = [], []

    def sample() -> None:
        rss.append(rss_mib())
        sizes.append(cache.stats()["size"])

    t = read_file(reader, chunks, span, sample)
    reader.close()
    stats = cache.stats()
    close_cache(cache)
    starts = [0]
    for _, n in chunks:
        starts.append(starts[-1] + n)
    read_chunks = sum(1 for s in starts[:-1] if s < span)
    rows += [
        ["(c) read 3x the limit", f"{span // MiB} MiB, limit {limit // MiB}",
         f"{span / t / 1e9:.2f} GB/s", f"cache size at most {max(sizes + [stats['size']]) / MiB:.0f} MiB"],
        ["(c) counters", f"{read_chunks} chunks read", "",
         f"hits {stats['hits']} + misses {stats['misses']} = {stats['hits'] + stats['misses']}; "
         f"fetched {stats['bytes_fetched'] / MiB:.0f} MiB"],
        ["(c) RSS while reading", "", "", f"{min(rss):.0f} to {max(rss):.0f} MiB "
         f"(first {rss[0]:.0f}, last {rss[-1]:.0f})"],
    ]


class SlowStore(ForwardingStore):
    """A local store whose reads take LATENCY longer: a modelled cloud round trip."""

    LATENCY = 0.02

    def get(self, key):
        time.sleep(self.LATENCY)
        return self.inner.get(key)

    def get_range(self, key, start, length):
        time.sleep(self.LATENCY)
        return self.inner.get_range(key, start, length)


def bench_latency(work: str, chunks, span: int, rows: list) -> None:
    """(b) one fetch at a time vs read-ahead in parallel, with 20 ms per store read."""
    store = ChunkStore(SlowStore(open_store("file://" + os.path.join(work, "store"))))
    part, total = [], 0
    for ref in chunks:
        if total >= span:
            break
        part.append(ref)
        total += ref.size
    os.sync()
    serial = serial_fetch(store, part)
    cache = open_cache(os.path.join(work, "slow-cache"), 4 * total + 64 * MiB)
    reader = CachedChunkReader(cache, store)
    parallel = read_file(reader, part)
    reader.close()
    close_cache(cache)
    ms = int(SlowStore.LATENCY * 1000)
    rows += [
        [f"(b) store +{ms} ms/read, one at a time", f"{total // MiB} MiB",
         f"{total / serial / 1e6:.0f} MB/s", "1.00 (reference)"],
        [f"(b) store +{ms} ms/read, cold via cache", f"{total // MiB} MiB",
         f"{total / parallel / 1e6:.0f} MB/s", f"{serial / parallel:.2f} x one at a time"],
    ]


def start_emulator() -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "gcp-storage-emulator"),
                             "start", "--host=127.0.0.1", f"--port={port}", "--in-memory", "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("gcp-storage-emulator did not start")


def bench_gcs(work: str, size: int, rows: list) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    proc, host = start_emulator()
    try:
        os.environ["STORAGE_EMULATOR_HOST"] = host
        client = storage.Client(project="bench", credentials=AnonymousCredentials())
        client.create_bucket("bench")
        src = os.path.join(work, "gsrc")
        os.makedirs(src)
        make_file(os.path.join(src, "file.bin"), size)
        print(f"uploading {size // MiB} MiB to the GCS emulator...", flush=True)
        repo, chunks = upload("gs://bench/dm", src)
        bucket = client.bucket("bench")
        os.sync()

        def raw_get(ref) -> bytes:  # a chunk's range of its pack
            return bucket.blob("dm/" + ChunkStore.pack_key(ref.pack)).download_as_bytes(
                start=ref.offset, end=ref.offset + ref.size - 1)

        start = time.perf_counter()
        for ref in chunks:
            raw_get(ref)
        raw = time.perf_counter() - start
        start = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(raw_get, chunks))
        raw_parallel = time.perf_counter() - start
        serial = serial_fetch(repo.chunks, chunks)
        cache = open_cache(os.path.join(work, "gcache"), 2 * size + 64 * MiB)
        reader = CachedChunkReader(cache, repo.chunks)
        cold = read_file(reader, chunks)
        warm = read_file(reader, chunks)
        reader.close()
        close_cache(cache)
        gbs = lambda seconds: f"{size / seconds / 1e6:.0f} MB/s"  # noqa: E731
        label = f"{size // MiB} MiB"
        rows += [
            ["(b) GCS emulator, raw client, one at a time", label, gbs(raw), "1.00 (reference)"],
            ["(b) GCS emulator, raw client, 8 threads", label, gbs(raw_parallel), f"{raw / raw_parallel:.2f} x raw"],
            ["(b) GCS emulator, ChunkStore, one at a time", label, gbs(serial), f"{raw / serial:.2f} x raw"],
            ["(b) GCS emulator, cold via cache", label, gbs(cold),
             f"{serial / cold:.2f} x one at a time, {raw / cold:.2f} x raw"],
            ["(b) GCS emulator, warm via cache", label, gbs(warm), f"{cold / warm:.1f} x cold"],
        ]
        client.close()
    finally:
        proc.terminate()
        proc.wait(10)


def table(title: str, header: list[str], rows: list[list]) -> None:
    print(f"\n## {title}\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="MiB of the local file (default 2048)")
    parser.add_argument("--gcs-size", type=int, default=64, help="MiB through the GCS emulator (default 64)")
    args = parser.parse_args()
    work = scratch("cache")
    rows: list = []
    try:
        bench_gcs(work, args.gcs_size * MiB, rows)  # first: before the local runs' gigabytes of writes
        bench_local(work, args.size * MiB, rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table("block cache (FileReader, sequential 1 MiB reads; best of 3 where warm)",
          ["measure", "bytes", "throughput", "ratio"], rows)


if __name__ == "__main__":
    main()
