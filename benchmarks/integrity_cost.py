"""What integrity checks cost (issue 18): a read pass over an embedding dir with and without the
per-pass shard sha256, Parquet's own page checksums (CRC32, written and verified) as the
alternative, and the index.faiss sha256 at open on a 1M-row index vs faiss.read_index itself.

Sides alternate, 3 repeats each, medians reported. Files are in the page cache (warm), which is
the case that makes the hash's share largest.

    python benchmarks/integrity_cost.py [--rows 100000] [--dim 256] [--index-rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from embedsearch.store import reader, write_embedding_dir
from embedsearch.store.integrity import sha256_file


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def alternate(sides: dict[str, Callable[[], object]], repeats: int = 3) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, fn in sides.items():
            times[name].append(timed(fn))
    return {name: statistics.median(values) for name, values in times.items()}


def read_pass(path: Path, verify: bool) -> None:
    real = reader.verify_shard
    if not verify:
        reader.verify_shard = lambda *a: None  # type: ignore[assignment]
    try:
        for _ in reader.iter_vector_batches(path):
            pass
    finally:
        reader.verify_shard = real  # type: ignore[assignment]


def page_checksum_pass(files: list[Path], verify: bool) -> None:
    for f in files:
        shard = pq.ParquetFile(f, page_checksum_verification=verify)
        for _ in shard.iter_batches(batch_size=65_536):
            pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--index-rows", type=int, default=1_000_000)
    parser.add_argument("--index-dim", type=int, default=64)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="integrity-"))
    v = np.random.default_rng(0).normal(size=(args.rows, args.dim)).astype(np.float32)
    d = write_embedding_dir(work / "emb", v, model="m", shard_rows=25_000)
    size = sum(os.path.getsize(p) for p in d.shard_paths())
    with_crc = []
    for p in d.shard_paths():  # the same shards rewritten with page checksums
        crc = work / f"crc-{p.name}"
        pq.write_table(pq.read_table(p), crc, compression="zstd", write_page_checksum=True)
        with_crc.append(crc)
    read_pass(d.path, True)  # warm the page cache
    shards = alternate(
        {
            "read pass, no check": lambda: read_pass(d.path, False),
            "read pass + sha256 per shard": lambda: read_pass(d.path, True),
            "sha256 of the shards alone": lambda: [sha256_file(p) for p in d.shard_paths()],
            "parquet read, page CRC not verified": lambda: page_checksum_pass(with_crc, False),
            "parquet read, page CRC verified": lambda: page_checksum_pass(with_crc, True),
        }
    )
    print(f"embedding dir: {args.rows:,} x {args.dim} in 4 shards, {size / 2**20:.0f} MiB")
    for name, seconds in shards.items():
        print(f"  {name:40} {seconds:7.3f} s   {size / 2**20 / seconds:7.0f} MiB/s")

    import faiss

    index = faiss.IndexFlatIP(args.index_dim)
    x = np.random.default_rng(1).normal(size=(args.index_rows, args.index_dim)).astype(np.float32)
    index.add(x)
    del x
    path = work / "index.faiss"
    faiss.write_index(index, str(path))
    del index
    sha256_file(path)
    opened = alternate(
        {
            "faiss.read_index": lambda: faiss.read_index(str(path)),
            "sha256 of index.faiss": lambda: sha256_file(path),
        }
    )
    mib = path.stat().st_size / 2**20
    print(f"index: {args.index_rows:,} rows x {args.index_dim} flat, {mib:.0f} MiB")
    for name, seconds in opened.items():
        print(f"  {name:40} {seconds:7.3f} s   {mib / seconds:7.0f} MiB/s")
    for p in work.rglob("*"):
        if p.is_file():
            p.unlink()


if __name__ == "__main__":
    main()
