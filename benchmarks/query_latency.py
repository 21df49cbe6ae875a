"""Search latency with faiss's default OpenMP threads vs the small-batch policy (issue 17.4).

``before``: ``index.search`` with faiss's default thread count (what ``Searcher`` did);
``after``: the same call inside ``search_threads(n)`` (one thread below ``SMALL_BATCH``
queries, faiss's default above), which is what ``Searcher.search_raw`` does now. Both run on
the same built index in the same process, alternating in rounds, with ``--burners`` processes
spinning on the CPU (another process busy) and with none. Reported: p50/p99 wall ms of one
query and of a 1,000-query batch, and the latency ``index.json`` records, the old way (wall
clock, default threads) and the new (one thread's CPU time).

    flock /tmp/embedsearch-bench.lock python benchmarks/query_latency.py --burners 0,1,2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from common import print_table  # noqa: E402

from embedsearch.index import Searcher, build_index  # noqa: E402
from embedsearch.index.threads import faiss_threads, search_threads  # noqa: E402
from embedsearch.index.tune import measure_latency  # noqa: E402
from embedsearch.store.arrays import write_embedding_dir  # noqa: E402


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(7).standard_normal((50, dim)).astype(np.float32)
    x = centres[rng.integers(0, 50, n)] + 0.5 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_index(root: Path, rows: int, dim: int, kind: str) -> Searcher:
    emb, out = root / f"emb-{rows}", root / f"index-{rows}-{kind}"
    if not emb.is_dir():
        write_embedding_dir(
            emb,
            clustered(rows, dim, 0),
            ids=np.arange(rows),
            sources=[f"img/{i}.png" for i in range(rows)],
            content_hashes=[f"h{i}" for i in range(rows)],
            model="simclr:resnet18",
            fingerprint="bench",
        )
    if not out.is_dir():
        build_index([emb], out, kind=kind)
    return Searcher.open(out)


def old_measure_latency(index, queries: np.ndarray, k: int, singles: int = 200) -> dict:
    """``index.json``'s latency as it was recorded before: wall clock, faiss's default threads."""
    index.search(queries[:8], k)
    times = []
    for row in queries[:singles]:
        start = time.perf_counter()
        index.search(row[None, :], k)
        times.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}


def timed(index, queries: np.ndarray, k: int, policy: str, repeats: int) -> list[float]:
    """Wall ms of ``repeats`` searches of ``queries`` under ``policy`` (before/after)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        with search_threads(len(queries)) if policy == "after" else faiss_threads(None):
            index.search(queries, k)
        times.append((time.perf_counter() - start) * 1000)
    return times


def burners(n: int) -> list[subprocess.Popen]:
    spin = "while True: pass"
    return [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(n)]


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def measure_searcher(s: Searcher, rounds: int) -> dict[tuple[str, str], list[float]]:
    """Wall ms samples per (search, side): 200 different single queries and 5 batches a round."""
    queries = clustered(1000, s.dim, 1)
    samples: dict[tuple[str, str], list[float]] = {}
    for r in range(rounds):
        for policy in ("before", "after") if r % 2 == 0 else ("after", "before"):
            singles = [timed(s.index, queries[i : i + 1], 10, policy, 1)[0] for i in range(200)]
            samples.setdefault(("1 query", policy), []).extend(singles)
            batches = timed(s.index, queries, 10, policy, 5)
            samples.setdefault(("1000 queries", policy), []).extend(batches)
    return samples


def run_condition(searchers: dict[str, Searcher], burner_count: int, rounds: int) -> list[list]:
    procs = burners(burner_count)
    rows: list[list] = []
    try:
        time.sleep(1.0)  # let the burners start spinning
        for name, s in searchers.items():
            for (label, policy), times in sorted(measure_searcher(s, rounds).items()):
                p50, p99 = np.percentile(times, 50), np.percentile(times, 99)
                rows.append([burner_count, name, label, policy, float(p50), float(p99)])
            queries = clustered(1000, s.dim, 1)
            old = old_measure_latency(s.index, queries, 10)
            new = measure_latency(s.index, queries, 10)
            recorded = "index.json p50/p99"
            rows.append([burner_count, name, recorded, "old (wall)", old["p50_ms"], old["p99_ms"]])
            rows.append([burner_count, name, recorded, "new (cpu)", new["p50_ms"], new["p99_ms"]])
    finally:
        for p in procs:
            p.kill()
            p.wait()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burners", default="0,1", help="comma list of busy-process counts")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    root = args.work or Path(tempfile.mkdtemp(prefix="embedsearch-latency-"))
    root.mkdir(parents=True, exist_ok=True)
    searchers = {
        "flat, 400 x 128": make_index(root, 400, 128, "flat"),
        "flat, 50k x 128": make_index(root, 50_000, 128, "flat"),
        "hnsw, 50k x 128": make_index(root, 50_000, 128, "hnsw"),
    }
    print(f"load before: {load()}  ({os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')})")
    rows = []
    for count in (int(c) for c in args.burners.split(",")):
        rows += run_condition(searchers, count, args.rounds)
        print(f"burners {count} done: load {load()}", flush=True)
    print(f"load after: {load()}")
    print_table(["burners", "index", "search", "side", "p50 ms", "p99 ms"], rows)


if __name__ == "__main__":
    main()
