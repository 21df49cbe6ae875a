"""Dedup at corpus scale: 1M vectors x 128 d on this machine, wall time and peak RSS.

Generates (once, reused) an embedding dir of ``--n`` L2-normalised vectors with a low
intrinsic dimension (a 24-d latent mapped to 128 d, plus noise), with 1 % of rows
planted as near copies (cosine ~0.97) and 0.2 % as exact copies (same content hash).
Then runs ``find_duplicates`` in a child process (``--whiten auto``: dedup's default, which
tests whitening on self-made copies of the corpus's images; these vectors have none, so it
compares raw cosines; ``off`` / ``both`` to compare), and reports wall time, peak RSS
(the child and its children, sampled every 50 ms), the share of planted copies found,
and RSS / vector bytes. Goal: <= 5 minutes and RSS <= 2x the vectors' size at 1M.

Side by side, imagededup's CNN dedup path (``CNN.find_duplicates(encoding_map=...)``,
its own virtualenv; the encodings are the same vectors, so no images or weights are
needed) runs at growing N under an RSS cap until it fails, next to ours at the same N (raw
cosines on both sides, so both compare the same scores with the same threshold).

    flock /tmp/embedsearch-bench.lock python benchmarks/dedup_scale.py

``--only compare`` runs the faiss IVF search dedup used before issue 15 and today's cell join
side by side (alternating); ``--only full`` runs just the default dedup at ``--n``, e.g. at 10M:

    flock /tmp/embedsearch-bench.lock python benchmarks/dedup_scale.py --n 10000000 \\
        --work /tmp/dedup-10m --only full
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, print_table

LATENT = 24
NEAR_SHARE = 0.01
EXACT_SHARE = 0.002
SYNTHETIC_MODEL = {"model": "synthetic", "fingerprint": "synthetic-128", "shard_rows": 100_000}

OURS = r"""
import functools, json, resource, sys, time
from embedsearch import find_duplicates
from embedsearch.dedup import find, knn
if len(sys.argv) > 5 and sys.argv[5] == "index":  # the faiss IVF search of before issue 15
    find.METHODS["knn"] = functools.partial(knn.knn_duplicates, cell_join_above=2**62)
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
class Phases:  # wall and CPU seconds of each progress task, e.g. "joining cells"
    def __init__(self):
        self.phases, self.at = [], (time.perf_counter(), cpu(), "(before any task)", None)
    def start(self, description, total):
        wall, used, name, n = self.at
        self.phases.append([name, n, round(time.perf_counter() - wall, 1), round(cpu() - used, 1)])
        self.at = (time.perf_counter(), cpu(), description, total)
    def advance(self, n=1):
        pass
    def stop(self):
        self.start(f"(after {self.at[2]})", None)
started = time.perf_counter()
whiten = {"auto": None, "off": False}[sys.argv[4]]
phases = Phases()
r = find_duplicates(sys.argv[1], out=sys.argv[2], threshold=float(sys.argv[3]), whiten=whiten,
                    progress=phases)
phases.start("done", None)
print(json.dumps({"seconds": time.perf_counter() - started, "pairs": r.pairs,
                  "exact": r.exact_pairs, "groups": r.groups, "remove": r.to_remove,
                  "search": r.search, "scores": r.space, "cpu": cpu(),
                  "phases": phases.phases}))
"""

IMAGEDEDUP = r"""
import json, sys, time
import numpy as np, pyarrow.parquet as pq
from imagededup.methods import CNN
from imagededup.utils.models import CustomModel
import torch
n, threshold = int(sys.argv[2]), float(sys.argv[3])
vectors = []
for path in sorted(__import__("glob").glob(sys.argv[1] + "/part-*.parquet")):
    table = pq.read_table(path, columns=["embedding"])
    column = table.column("embedding").combine_chunks()
    vectors.append(np.asarray(column.flatten()).reshape(-1, 128))
    if sum(len(v) for v in vectors) >= n:
        break
x = np.concatenate(vectors)[:n]
identity = CustomModel(name="identity", model=torch.nn.Identity(), transform=lambda im: im)
cnn = CNN(verbose=False, model_config=identity)
started = time.perf_counter()
found = cnn.find_duplicates(encoding_map={f"{i}": x[i] for i in range(n)},
                            min_similarity_threshold=threshold)
pairs = sum(len(v) for v in found.values()) // 2
print(json.dumps({"seconds": time.perf_counter() - started, "pairs": pairs}))
"""


def generate(out: Path, n: int, dim: int, seed: int = 0) -> Path:
    """The synthetic embedding dir (skipped when it already holds ``n`` rows)."""
    from embedsearch.store.arrays import write_embedding_dir
    from embedsearch.store.embedding_dir import EmbeddingDir

    if EmbeddingDir.is_embedding_dir(out) and EmbeddingDir.open(out).live_rows == n:
        return out
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(LATENT, dim)).astype(np.float32)
    chunk = 100_000
    planted: dict[str, list[np.ndarray]] = {"near": [], "exact": []}
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        x = rng.normal(size=(m, LATENT)).astype(np.float32) @ mixing + 0.3 * rng.normal(
            size=(m, dim)
        ).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        hashes = [f"{start + i:032x}" for i in range(m)]
        # Planted copies of rows earlier in the same chunk: near (perturbed) and exact (same hash).
        near = rng.choice(np.arange(m // 2, m), int(NEAR_SHARE * m), replace=False)
        exact = rng.choice(
            np.setdiff1d(np.arange(m // 2, m), near), int(EXACT_SHARE * m), replace=False
        )
        for kind, rows, noise in (("near", near, 0.25), ("exact", exact, 0.0)):
            origin = rng.integers(0, m // 2, len(rows))
            planted[kind].append(np.stack([start + origin, start + rows], axis=1))
            y = x[origin] + noise * rng.normal(size=(len(rows), dim)).astype(np.float32) / np.sqrt(
                dim
            )
            x[rows] = y / np.linalg.norm(y, axis=1, keepdims=True)
            if noise == 0.0:
                for r, o in zip(rows, origin, strict=False):
                    hashes[r] = hashes[o]
        ids = np.arange(start, start + m)
        sources = [f"img/{i:07d}.jpg" for i in ids]
        write_embedding_dir(
            out, x, ids=ids, sources=sources, content_hashes=hashes, **SYNTHETIC_MODEL
        )
    np.savez(out.parent / "planted.npz", **{k: np.concatenate(v) for k, v in planted.items()})
    return out


def found_pairs(result_dir: Path) -> set[tuple[int, int]]:
    """The (smaller id, larger id) pairs of a run's pairs.parquet."""
    import pyarrow.parquet as pq

    table = pq.read_table(result_dir / "pairs.parquet", columns=["id_a", "id_b"])
    a, b = table.column("id_a").to_numpy(), table.column("id_b").to_numpy()
    return set(zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist(), strict=False))


def planted_recall(work: Path, result_dir: Path, n: int | None = None) -> dict[str, float]:
    """Share of planted (origin, copy) pairs that the run's pairs.parquet holds, among the pairs
    planted in its first ``n`` rows (all when None: the ids are the row numbers)."""
    found = found_pairs(result_dir)
    planted = np.load(work / "planted.npz")
    out = {}
    for kind in ("near", "exact"):
        pairs = [(o, c) for o, c in planted[kind].tolist() if o != c and (n is None or c < n)]
        hits = sum((min(o, c), max(o, c)) in found for o, c in pairs)
        out[kind] = hits / max(1, len(pairs))
    return out


def run_measured(cmd: list[str], rss_cap: int) -> tuple[dict | None, float, int, str]:
    """Run ``cmd``; returns (its JSON output, wall s, peak RSS of the process tree, status)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, status = 0, "ok"
    parent = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            rss = sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)])
        except psutil.Error:
            rss = 0
        peak = max(peak, rss)
        if rss > rss_cap:
            for p in [*parent.children(recursive=True), parent]:
                p.kill()
            status = f"killed at RSS cap {rss_cap / 2**30:.0f} GiB"
            break
        time.sleep(0.05)
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    if status == "ok" and proc.returncode != 0:
        status = f"failed: {(err.strip().splitlines() or ['?'])[-1][:80]}"
    return (
        (json.loads(out.strip().splitlines()[-1]) if status == "ok" else None),
        wall,
        peak,
        status,
    )


def subset_dir(src: Path, n: int, root: Path) -> Path:
    """The first ``n`` rows of ``src`` as their own embedding dir (for the side-by-side runs)."""
    from embedsearch.store.arrays import write_embedding_dir
    from embedsearch.store.embedding_dir import EmbeddingDir
    from embedsearch.store.reader import iter_vector_batches

    out = root / f"emb-{n}"
    if EmbeddingDir.is_embedding_dir(out):
        return out
    taken = 0
    columns = ["id", "source", "content_hash"]
    for batch, vectors in iter_vector_batches(src, columns, batch_rows=min(n, 65_536)):
        rows = min(batch.num_rows, n - taken)
        write_embedding_dir(
            out,
            vectors[:rows],
            ids=batch.column("id").to_numpy()[:rows],
            sources=batch.column("source").to_pylist()[:rows],
            content_hashes=batch.column("content_hash").to_pylist()[:rows],
            **SYNTHETIC_MODEL,
        )
        taken += rows
        if taken >= n:
            break
    return out


def ours_command(emb: Path, out: Path, threshold: float, whiten: str, search: str) -> list[str]:
    """The child that runs ``find_duplicates``; ``search`` ``index`` forces the faiss IVF search
    dedup used before issue 15 (``cell``: today's default)."""
    return [sys.executable, "-c", OURS, str(emb), str(out), str(threshold), whiten, search]


def run_full(args: argparse.Namespace, emb: Path, cap: int) -> None:
    """Only the default dedup at ``--n``: wall, CPU, peak RSS, pairs, planted recall, load."""
    out_dir = args.work / "out-full-auto"
    before = os.getloadavg()
    result, wall, rss, status = run_measured(
        ours_command(emb, out_dir, args.threshold, "auto", "cell"), 2 * cap
    )
    vector_bytes = args.n * 128 * 4
    print(
        f"\nembedsearch dedup (defaults, --threshold {args.threshold}), {args.n:,} rows: {result}"
    )
    print(f"status {status}; load average before {before}, after {os.getloadavg()}")
    print(
        f"wall {wall:.1f} s (goal <= 900 at 10M), CPU {(result or {}).get('cpu', 0):.1f} s, "
        f"peak RSS {rss / 2**20:.0f} MiB = {rss / vector_bytes:.2f} x the vectors' "
        f"{vector_bytes / 2**20:.0f} MiB (goal <= 2.00)"
    )
    if result:
        recall = planted_recall(args.work, out_dir, args.n)
        print(
            f"pairs {result['pairs']:,}; planted copies found: near (cos ~0.97) "
            f"{recall['near']:.4f}, exact {recall['exact']:.4f}; search: {result['search']}"
        )
        print_table(
            ["phase (from its progress task to the next)", "items", "wall s", "CPU s"],
            result["phases"],
        )


def run_compare(args: argparse.Namespace, emb: Path, cap: int) -> None:
    """The faiss IVF search (before issue 15) and the cell join side by side at ``--n``,
    alternating, ``--rounds`` each: medians, and how their pairs compare."""
    runs: dict[str, list[tuple[float, float, int]]] = {"index": [], "cell": []}
    outs = {}
    for r in range(args.rounds):
        for search in ("index", "cell") if r % 2 == 0 else ("cell", "index"):
            out_dir = args.work / f"out-{search}-{r}"
            load = os.getloadavg()[0]
            result, wall, rss, status = run_measured(
                ours_command(emb, out_dir, args.threshold, "auto", search), 2 * cap
            )
            if result is None:
                raise SystemExit(f"{search}: {status}")
            runs[search].append((wall, result["cpu"], rss))
            outs[search] = (out_dir, result)
            print("    phases (name, items, wall s, CPU s):", result["phases"], flush=True)
            print(
                f"  round {r} {search}: wall {wall:.1f} s, CPU {result['cpu']:.1f} s, peak RSS "
                f"{rss / 2**20:.0f} MiB, pairs {result['pairs']:,}, load {load:.1f} -> "
                f"{os.getloadavg()[0]:.1f} ({result['search']})",
                flush=True,
            )
    rows = []
    for search, label in (("index", "faiss IVF search (before)"), ("cell", "cell join (now)")):
        wall, cpu, rss = (float(np.median([run[i] for run in runs[search]])) for i in range(3))
        out_dir, result = outs[search]
        recall = planted_recall(args.work, out_dir, args.n)
        rows.append(
            [
                label,
                wall,
                cpu,
                rss / 2**20,
                rss / (args.n * 128 * 4),
                result["pairs"],
                recall["near"],
                recall["exact"],
            ]
        )
    print_table(
        [
            "search",
            "wall s",
            "CPU s",
            "peak RSS MiB",
            "x vectors",
            "pairs",
            "near recall",
            "exact recall",
        ],
        rows,
    )
    before, now = found_pairs(outs["index"][0]), found_pairs(outs["cell"][0])
    print(
        f"pairs: both {len(before & now):,}, only before {len(before - now):,}, only now "
        f"{len(now - before):,} (each is a true pair: scores are exact)"
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--threshold", type=float, default=0.9)
    p.add_argument("--work", type=Path, default=Path("/tmp/dedup-scale"))
    p.add_argument("--imagededup-python", default="/root/venv-imagededup/bin/python")
    p.add_argument("--imagededup-n", default="10000,20000,40000")
    p.add_argument("--rss-cap-gib", type=float, default=8.0)
    p.add_argument(
        "--only",
        choices=["all", "full", "compare"],
        default="all",
        help="full: only the default dedup at --n (wall, CPU, RSS, pairs, recall); compare: "
        "the faiss IVF search of before issue 15 and the cell join, alternating --rounds times",
    )
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument(
        "--whiten",
        choices=["auto", "off", "both"],
        default="auto",
        help="the full-size run: dedup's default whitening, --no-whiten, or both",
    )
    p.add_argument(
        "--skip-imagededup",
        action="store_true",
        help="run only ours at the --imagededup-n sizes (keep imagededup's rows from an earlier "
        "run)",
    )
    args = p.parse_args()
    print(f"machine: {machine()}")
    started = time.perf_counter()
    emb = generate(args.work / "emb", args.n, 128)
    print(
        f"generated {args.n:,} x 128 in {time.perf_counter() - started:.0f} s (reused when present)"
    )
    cap = int(args.rss_cap_gib * 2**30)
    if args.only == "full":
        run_full(args, emb, cap)
    elif args.only == "compare":
        run_compare(args, emb, cap)
    else:
        run_all(args, emb, cap)


def run_all(args: argparse.Namespace, emb: Path, cap: int) -> None:
    """imagededup side by side at small N, then ours at ``--n``."""
    rows = []
    have_theirs = args.skip_imagededup or Path(args.imagededup_python).exists()
    sizes = [int(s) for s in args.imagededup_n.split(",") if s] if have_theirs else []
    for n in sizes:
        sub = subset_dir(emb, n, args.work)
        ours, wall, rss, status = run_measured(
            [
                sys.executable,
                "-c",
                OURS,
                str(sub),
                str(args.work / f"out-{n}"),
                str(args.threshold),
                "off",
            ],
            cap,
        )
        rows.append(
            ["embedsearch", f"{n:,}", wall, rss / 2**20, (ours or {}).get("pairs", "-"), status]
        )
        if args.skip_imagededup:
            print(f"  N={n:,}: ours {wall:.1f} s {rss / 2**20:.0f} MiB", flush=True)
            continue
        theirs, wall2, rss2, status2 = run_measured(
            [args.imagededup_python, "-c", IMAGEDEDUP, str(sub), str(n), str(args.threshold)], cap
        )
        rows.append(
            [
                "imagededup CNN",
                f"{n:,}",
                wall2,
                rss2 / 2**20,
                (theirs or {}).get("pairs", "-"),
                status2,
            ]
        )
        print(
            f"  N={n:,}: ours {wall:.1f} s {rss / 2**20:.0f} MiB | imagededup {wall2:.1f} s "
            f"{rss2 / 2**20:.0f} MiB ({status2})",
            flush=True,
        )
        if status2 != "ok":
            break
    summaries = []
    for mode in ("auto", "off") if args.whiten == "both" else (args.whiten,):
        out_dir = args.work / f"out-full-{mode}"
        result, wall, rss, status = run_measured(
            [sys.executable, "-c", OURS, str(emb), str(out_dir), str(args.threshold), mode], 2 * cap
        )
        label = "embedsearch" + (" (default, whiten auto)" if mode == "auto" else " --no-whiten")
        rows.append(
            [label, f"{args.n:,}", wall, rss / 2**20, (result or {}).get("pairs", "-"), status]
        )
        summaries.append((label, out_dir, result, wall, rss))
    print_table(["tool", "N", "wall s", "peak RSS MiB", "pairs", "status"], rows)
    vector_bytes = args.n * 128 * 4
    for label, out_dir, result, wall, rss in summaries:
        print(f"\n{label}, {args.n:,} rows: {result}")
        print(
            f"wall {wall:.1f} s (goal <= 300), peak RSS {rss / 2**20:.0f} MiB = "
            f"{rss / vector_bytes:.2f} x the vectors' {vector_bytes / 2**20:.0f} MiB (goal <= 2.00)"
        )
        if result:
            recall = planted_recall(args.work, out_dir, args.n)
            print(
                f"planted copies found: near (cos ~0.97) {recall['near']:.4f}, "
                f"exact {recall['exact']:.4f}; {result['exact']:,} exact pairs, "
                f"{result['remove']:,} rows to remove"
            )


if __name__ == "__main__":
    main()
