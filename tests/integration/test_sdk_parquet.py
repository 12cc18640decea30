"""One column of a 200 MB Parquet file, read with pandas through datamon://, fetches a small
fraction of the file's bytes from the store: ranges come through the block cache chunk
by chunk, never the whole file. Counted at the store: pack ranges (format 2) or loose
chunks (format 1), each byte at most once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from datamonfs.sdk.filesystem import DatamonFileSystem
from support.cache import CountingStore
from support.sdk import open_store

COLUMNS, ROWS, ROW_GROUP = 10, 2_600_000, 260_000  # 8-byte values: about 200 MB


def test_one_column_of_a_big_parquet_file_fetches_a_small_fraction(tmp_path):
    rng = np.random.default_rng(7)
    table = pa.table({f"c{i}": rng.random(ROWS) for i in range(COLUMNS)})
    local = tmp_path / "big.parquet"
    pq.write_table(table, local, row_group_size=ROW_GROUP, compression="none")
    size = local.stat().st_size
    assert size > 200_000_000

    writer = open_store("file://" + str(tmp_path / "store"), tmp_path / "writer")
    with writer.create_repo("big").new_bundle(message="200 MB") as nb:
        nb.put_file(str(local), "data/big.parquet")
    chunks = writer.repository.trees.chunks(
        writer.repository.lookup(nb.bundle.record, "data/big.parquet"))
    writer.close()

    reader = open_store("file://" + str(tmp_path / "store"), tmp_path / "reader")  # cold cache
    counting = CountingStore(reader.repository.chunks.store)
    reader.repository.chunks.store = counting
    fs = DatamonFileSystem(store=reader, skip_instance_cache=True)
    column = pd.read_parquet("datamon://big/data/big.parquet", filesystem=fs, columns=["c3"])
    assert np.array_equal(column["c3"].to_numpy(), table.column("c3").to_numpy())

    fetched, twice = counting.content_bytes()  # loose chunks (format 1) or pack ranges
    print(f"one column of {COLUMNS}: {fetched / size:.1%} of {size} bytes fetched "
          f"({len(chunks)} chunks in the file)")
    assert not twice, "a byte of the file was fetched twice"
    assert fetched <= 0.25 * size
    reader.close()
