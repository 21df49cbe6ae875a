"""Baseline child of index_bench.py: autofaiss ``build_index``, run inside its own virtualenv.

Run by ``benchmarks/index_bench.py`` with /root/venv-autofaiss/bin/python (made by
``benchmarks/setup_autofaiss_venv.sh``: autofaiss needs numpy<2 and faiss-cpu 1.8). It
builds from a folder of .npy files at a memory budget, then measures recall@10 on the
benchmark's fresh queries, batch QPS over 1000 queries and single-query p50 with the
parameters autofaiss tuned, and prints one JSON line. Depends only on numpy and faiss.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def measure(index, queries: np.ndarray, truth: np.ndarray, k: int = 10) -> dict:
    """recall@k vs exact, batch seconds/QPS, single-query p50 (ms): index_bench.py's code too."""
    index.search(queries[:8], k)
    start = time.perf_counter()
    _, found = index.search(queries, k)
    batch = time.perf_counter() - start
    recall = float(
        np.mean([len(np.intersect1d(a, b[:k])) / k for a, b in zip(found, truth, strict=False)])
    )
    singles = []
    for row in queries[:200]:
        t = time.perf_counter()
        index.search(row[None, :], k)
        singles.append((time.perf_counter() - t) * 1000)
    return {
        "recall": recall,
        "batch_s": batch,
        "qps": len(queries) / batch,
        "p50_ms": float(np.median(singles)),
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MiB) since its exec: ``VmHWM``.

    Not ``ru_maxrss``: Linux carries that over from the forking parent, so a child of the
    benchmark that had just generated the data reported the parent's peak.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--npy-dir", required=True)
    parser.add_argument("--index", required=True)
    parser.add_argument(
        "--budget", required=True, help="autofaiss max_index_memory_usage, e.g. 30MB"
    )
    parser.add_argument("--queries", required=True)
    parser.add_argument("--truth", required=True)
    args = parser.parse_args()
    from autofaiss import build_index

    start = time.perf_counter()
    index, infos = build_index(
        embeddings=args.npy_dir,
        index_path=args.index,
        index_infos_path=args.index + ".json",
        max_index_memory_usage=args.budget,
        current_memory_available="16G",
        metric_type="ip",
        nb_cores=2,
        save_on_disk=True,
        verbose=40,
    )
    build = time.perf_counter() - start
    result = measure(index, np.load(args.queries), np.load(args.truth))
    import os

    result.update(
        peak_rss_mb=peak_rss_mb(),
        build_s=build,
        factory=str(infos.get("index_key")),
        params=str(infos.get("index_param")),
        index_bytes=os.path.getsize(args.index),
    )
    print("RESULT " + json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
