"""Upload and download at scale through the CLI, beside `cp -r` of the same bytes.

Prints throughput, files per second, peak RSS (target < 300 MB) and the dedup
figures: re-uploading an unchanged folder, ~1% of a large file changed in place,
and bytes inserted near its start. Defaults: 100,000 small files and one 4 GiB
file; --files and --big-mib scale them down for a quick look.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil

from benchlib import DATAMONFS, isolated_env, mb, run, scratch, table


def make_small_files(root: str, count: int) -> int:
    rng = random.Random(1)
    total = 0
    for i in range(count):
        d = os.path.join(root, f"d{i // 1000:03}")
        if i % 1000 == 0:
            os.makedirs(d)
        data = rng.randbytes(rng.randrange(100, 8000))
        total += len(data)
        with open(os.path.join(d, f"f{i:06}.dat"), "wb") as f:
            f.write(data)
    return total


def make_big_file(path: str, size: int) -> None:
    rng = random.Random(2)
    with open(path, "wb") as f:
        block = 64 << 20
        for off in range(0, size, block):
            f.write(rng.randbytes(min(block, size - off)))


def uploaded(stderr: str) -> tuple[int, int, str]:
    """'N files, S; U of C chunks uploaded (B)' -> (U, C, B)."""
    tail = stderr.strip().splitlines()[-1].split(";")[1].split()
    return int(tail[0]), int(tail[2]), " ".join(tail[5:]).strip("()")


def scenario(name, src, count, size, env, work, rows):
    cp = run(["cp", "-r", src, os.path.join(work, f"cp-{name}")])
    up = run([DATAMONFS, "bundle", "upload", name, src, "-m", "bench"], env=env)
    dest = os.path.join(work, f"down-{name}")
    down = run([DATAMONFS, "bundle", "download", name, dest], env=env)
    rows.append([f"{name}: upload", f"{up.seconds:.1f}", f"{mb(size / up.seconds)}",
                 f"{count / up.seconds:.0f}", f"{up.peak_rss_mb:.0f}", f"{cp.seconds:.1f}",
                 f"{cp.seconds / up.seconds:.2f}"])
    rows.append([f"{name}: download", f"{down.seconds:.1f}", f"{mb(size / down.seconds)}",
                 f"{count / down.seconds:.0f}", f"{down.peak_rss_mb:.0f}", f"{cp.seconds:.1f}",
                 f"{cp.seconds / down.seconds:.2f}"])
    shutil.rmtree(dest)
    shutil.rmtree(os.path.join(work, f"cp-{name}"))
    return up


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--big-mib", type=int, default=4096)
    args = ap.parse_args()

    work = scratch("core")
    env = isolated_env(os.path.join(work, "home"), "file://" + os.path.join(work, "store"))
    run([DATAMONFS, "config", "create", "--name", "Bench", "--email", "bench@example.org"], env=env)
    for name in ("small", "big"):
        run([DATAMONFS, "repo", "create", name], env=env)

    small = os.path.join(work, "small")
    small_bytes = make_small_files(small, args.files)
    big_dir = os.path.join(work, "big")
    os.makedirs(big_dir)
    big = os.path.join(big_dir, "data.bin")
    big_size = args.big_mib << 20
    make_big_file(big, big_size)

    rows: list[list] = []
    scenario("small", small, args.files, small_bytes, env, work, rows)
    scenario("big", big_dir, 1, big_size, env, work, rows)
    table(f"Upload and download (local store; {args.files} small files, one {args.big_mib} MiB file)",
          ["figure", "seconds", "MB/s", "files/s", "peak RSS MB", "cp -r s", "ratio vs cp"], rows)

    dedup = []
    again = run([DATAMONFS, "bundle", "upload", "big", big_dir, "-m", "unchanged"], env=env)
    dedup.append(["re-upload unchanged", "0", *uploaded(again.stderr)])
    rng = random.Random(3)
    changed = 0
    with open(big, "r+b") as f:  # ~1% of the bytes, in 64 KiB patches spread over the file
        patches = max(1, big_size // 100 // 65536)
        for _ in range(patches):
            f.seek(rng.randrange(big_size - 65536))
            f.write(rng.randbytes(65536))
            changed += 65536
    edit = run([DATAMONFS, "bundle", "upload", "big", big_dir, "-m", "1% in place"], env=env)
    dedup.append(["~1% changed in place", mb(changed) + " MB", *uploaded(edit.stderr)])
    shifted = os.path.join(big_dir, "data.bin.new")
    with open(big, "rb") as fin, open(shifted, "wb") as fout:
        fout.write(fin.read(4096) + b"inserted near the start" + fin.read(4096 * 1000 - 4096))
        shutil.copyfileobj(fin, fout, 64 << 20)
    os.replace(shifted, big)
    ins = run([DATAMONFS, "bundle", "upload", "big", big_dir, "-m", "insert"], env=env)
    dedup.append(["23 bytes inserted at 4 KiB", "23 B", *uploaded(ins.stderr)])
    table("Dedup (one large file)", ["change", "bytes changed", "chunks uploaded", "chunks in file",
                                     "bytes uploaded"], dedup)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
