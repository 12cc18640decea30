"""How big each scenario runs: `default` takes about 45 minutes on a 2-core machine (the
1 GiB Parquet file of scenario 7 is 9 of them), `large` is ten times bigger, `smoke` only
checks that the suite runs end to end."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .common import MiB


@dataclass(frozen=True)
class Size:
    name: str
    dataset: int = 400 * MiB        # mixed dataset: ingest, versions
    dataset_small: int = 2_500      # small files in it
    gcs_small: int = 200            # the GCS emulator slows as objects accumulate:
    gcs_large: int = 32 * MiB       #   the same in every size
    gcs_files: int = 10_000         #   small files uploaded on their own
    read_file: int = 512 * MiB      # one large file read through the mounts
    parallel_file: int = 32 * MiB   # each of 16 files for parallel readers
    random_reads: int = 300         # per random-read figure
    tree_files: int = 10_000        # find + stat
    write_file: int = 256 * MiB     # sequential write through a writable mount
    untar_files: int = 5_000
    commit_dataset: int = 256 * MiB # 1% of it changed, then committed
    scattered_file: int = 400 * MiB # 1% of it changed as 64 KiB patches
    bundle_files: int = 100_000     # generated bundle: mount + first ls, daemon RSS
    scale_small: int = 10_000       # upload/download peak RSS
    scale_large: int = 512 * MiB
    fio_file: int = 256 * MiB       # fio: the files of each job group, in all
    fio_seconds: int = 8            # each timed fio job
    fio_verify: int = 512 * MiB     # written and verified (crc32c) through the mount
    parquet_file: int = 1024 * MiB  # read with pandas: datamon://, local disk, a mount
    sdk_files: int = 10_000         # small files written by new_bundle vs bundle upload
    serve_file: int = 256 * MiB     # served over HTTP to 64 clients
    serve_seconds: int = 10         # of load per figure


DEFAULT = Size("default")
LARGE = replace(DEFAULT, name="large", dataset=4096 * MiB, dataset_small=25_000,
                read_file=5120 * MiB, parallel_file=320 * MiB, tree_files=100_000,
                write_file=2560 * MiB, untar_files=50_000, commit_dataset=2560 * MiB,
                scattered_file=4096 * MiB, bundle_files=1_000_000, scale_small=100_000,
                scale_large=5120 * MiB, fio_file=2560 * MiB, fio_seconds=30,
                fio_verify=4096 * MiB, parquet_file=10240 * MiB, sdk_files=100_000,
                serve_file=2048 * MiB, serve_seconds=30)
SMOKE = replace(DEFAULT, name="smoke", dataset=24 * MiB, dataset_small=200, gcs_small=20,
                gcs_files=200, gcs_large=4 * MiB, read_file=16 * MiB, parallel_file=1 * MiB,
                random_reads=20, tree_files=300, write_file=8 * MiB, untar_files=200,
                commit_dataset=8 * MiB, scattered_file=16 * MiB, bundle_files=2_000,
                scale_small=200, scale_large=8 * MiB, fio_file=16 * MiB, fio_seconds=2,
                fio_verify=16 * MiB, parquet_file=16 * MiB, sdk_files=300, serve_file=8 * MiB,
                serve_seconds=2)
SIZES = {s.name: s for s in (SMOKE, DEFAULT, LARGE)}
