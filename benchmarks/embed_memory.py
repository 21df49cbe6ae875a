"""Peak RSS of ``embed`` on a corpus and on one 10x larger, each in a fresh process.

Goal (issue 2): peak RSS on the 10x corpus < 1.2x that of the small one (memory must not
grow with corpus size). The main process and the DataLoader workers are reported apart.

    python benchmarks/embed_memory.py [--small 1000] [--factor 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import machine, make_jpeg_folder, print_table

CHILD = """
import json, resource, sys
from embedsearch.embedding import embed
s = embed(sys.argv[1], model="simclr:resnet18", out=sys.argv[2], image_size=32, batch_size=64,
          device="cpu", shard_rows=int(sys.argv[3]))
print(json.dumps({"embedded": s.embedded, "seconds": s.seconds,
                  "main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "workers_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def measure(folder: Path, shard_rows: int) -> dict:
    out = Path(tempfile.mkdtemp()) / "emb"
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), str(out), str(shard_rows)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", type=int, default=300)
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--shard-rows", type=int, default=100_000)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    tmp = Path(tempfile.gettempdir())
    results = []
    for n in (args.small, args.small * args.factor):
        folder = make_jpeg_folder(tmp / f"embedsearch-bench-rss-{n}", n, size=64, seed=n)
        results.append((n, measure(folder, args.shard_rows)))
    rows = [[n, r["embedded"], r["seconds"], r["main_mb"], r["workers_mb"]] for n, r in results]
    print_table(
        ["images", "embedded", "seconds", "peak RSS main (MB)", "peak RSS worker (MB)"], rows
    )
    ratio = results[1][1]["main_mb"] / results[0][1]["main_mb"]
    print(f"peak RSS ratio ({args.factor}x corpus / small corpus): {ratio:.3f}  (goal < 1.2)")


if __name__ == "__main__":
    main()
