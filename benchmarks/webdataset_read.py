"""Reading WebDataset shards: the standard-library reader ``embed`` uses vs the webdataset package.

Both read every sample's image bytes, caption and json sidecar from the same uncompressed
shards (img2dataset's layout, 256 px JPEGs), warm page cache, no decoding: what differs is
the reader. Rounds alternate the two sides; medians are reported with the load average.
A third column times ``embed``'s real access pattern with 2 DataLoader workers: every
worker walks the headers, but reads only its own samples' image bytes.

Run: ``python benchmarks/webdataset_read.py`` (needs ``pip install webdataset`` for the
baseline side only; embedsearch itself does not depend on it).
"""

from __future__ import annotations

import io
import json
import os
import statistics
import tarfile
import tempfile
import time
import zlib
from pathlib import Path

from common import machine, make_jpeg_folder, print_table

from embedsearch.data.sources import WebDatasetSource

SHARDS, PER_SHARD, ROUNDS = 8, 1000, 5


def write_shards(folder: Path, jpegs: Path) -> str:
    files = sorted(jpegs.glob("*.jpg"))
    for s in range(SHARDS):
        path = folder / f"{s:05d}.tar"
        if path.exists():
            continue
        with tarfile.open(path, "w") as tar:
            for i in range(PER_SHARD):
                key = f"{s:05d}{i:04d}"
                image = files[(s * PER_SHARD + i) % len(files)].read_bytes()
                meta = json.dumps({"key": key, "url": f"http://example.com/{key}.jpg"}).encode()
                for ext, data in (
                    ("jpg", image),
                    ("txt", f"a photo {key}".encode()),
                    ("json", meta),
                ):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return f"{folder}/{{00000..{SHARDS - 1:05d}}}.tar"


def read_stdlib(spec: str) -> int:
    total = 0
    for item in WebDatasetSource(spec):
        assert item.member is not None
        total += len(item.member.read())
    return total


def read_stdlib_worker_share(spec: str, worker: int, workers: int = 2) -> int:
    """One of ``workers`` DataLoader workers: all headers, its own samples' bytes."""
    total = 0
    for item in WebDatasetSource(spec):
        if zlib.crc32(item.source.encode()) % workers == worker and item.member is not None:
            total += len(item.member.read())
    return total


def read_webdataset(spec: str) -> int:
    import webdataset as wds

    total = 0
    for sample in wds.WebDataset(spec, shardshuffle=False, empty_check=False):
        total += len(sample["jpg"])
        json.loads(sample["json"])
        sample["txt"].decode("utf-8")
    return total


def timed(fn, *args) -> tuple[float, int]:
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def main() -> None:
    work = Path(tempfile.gettempdir()) / "embedsearch-wds-bench"
    jpegs = make_jpeg_folder(work / "jpegs", 500, size=256)
    shards = work / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    spec = write_shards(shards, jpegs)
    samples = SHARDS * PER_SHARD
    print(machine())
    print(f"{SHARDS} shards x {PER_SHARD} samples (256 px JPEG + txt + json), warm cache")
    read_stdlib(spec), read_webdataset(spec)  # warm the page cache for both
    ours, theirs, share = [], [], []
    for _ in range(ROUNDS):
        t, n_ours = timed(read_stdlib, spec)
        ours.append(t)
        t, n_theirs = timed(read_webdataset, spec)
        theirs.append(t)
        assert n_ours == n_theirs  # same bytes read on both sides
        t, _ = timed(read_stdlib_worker_share, spec, 0)
        share.append(t)
    load = os.getloadavg()[0]
    rows = [
        ["stdlib tarfile (embedsearch)", statistics.median(ours)],
        ["webdataset 1.x", statistics.median(theirs)],
        ["stdlib, one of 2 workers' share", statistics.median(share)],
    ]
    print_table(
        ["reader", "median s", "samples/s"],
        [[name, t, f"{samples / t:,.0f}"] for name, t in rows],
    )
    ratio = statistics.median(theirs) / statistics.median(ours)
    print(f"webdataset / stdlib time: {ratio:.2f}x; load average {load:.1f}")


if __name__ == "__main__":
    main()
