"""Dedup out of the box: ``embedsearch dedup FOLDER -o OUT`` with its defaults, against PHash.

The copy-detection sets of ``benchmarks/dedup_quality.py`` (scikit-image photos, 300 distinct
48 px originals + one copy each in one folder, 300 true pairs; ``mild`` and ``strong`` copies,
``--seeds``). The one command runs as a user would, defaults only, with ``--pretrain-on`` the
set's 2,000 train crops (disjoint from every seed's originals and copies; the issue's protocol):
it pretrains with the copy-detection preset, embeds flip-averaged, calibrates and deduplicates,
with the pHash stage. The first set trains the model; the others find it finished in the same
``--work`` dir and reuse it (the command says so), as a second run of a user would.

Per set, side by side on the same files: the command's F1 (with its pHash stage), the same
vectors without the pHash stage (``find_duplicates(..., phash=None)``), embedsearch's own pHash
alone at the stage's distance and at its best distance, and imagededup's PHash
(``setup_imagededup_venv.sh``) at its default 10 and at its best (oracle) distance. The
command's wall time, process CPU time (user + sys of the command and its children) and the
load average are recorded; the quiet-machine time is estimated from the CPU time.

    flock /tmp/embedsearch-bench.lock python benchmarks/dedup_folder.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, print_table
from dedup_quality import best_f1, phash_rows, prf, write_set

from embedsearch import find_duplicates
from embedsearch.data.copies import make_copy_set
from embedsearch.dedup.options import DEFAULT_PHASH_DISTANCE
from embedsearch.dedup.phash import phash_files, phash_pairs
from embedsearch.store.embedding_dir import EmbeddingDir
from embedsearch.store.reader import embedding_matrix, iter_batches


def found_pairs(out: Path) -> set[frozenset]:
    pairs = pd.read_parquet(out / "pairs.parquet", columns=["source_a", "source_b"])
    return {
        frozenset((Path(a).name, Path(b).name))
        for a, b in zip(pairs.source_a, pairs.source_b, strict=False)
    }


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_command(
    folder: Path, out: Path, work: Path, train: Path, log: Path, extra: list[str]
) -> dict:
    """``embedsearch dedup FOLDER -o OUT --pretrain-on TRAIN --work WORK``, timed."""
    cpu0, wall0, load0 = child_cpu(), time.perf_counter(), os.getloadavg()[0]
    command = [sys.executable, "-m", "embedsearch", "dedup", str(folder), "-o", str(out)]
    command += ["--pretrain-on", str(train), "--work", str(work), *extra]
    with open(log, "w") as f:
        subprocess.run(command, check=True, stderr=f, stdout=subprocess.DEVNULL)
    return {
        "wall_s": time.perf_counter() - wall0,
        "cpu_s": child_cpu() - cpu0,
        "load_before": load0,
        "load_after": os.getloadavg()[0],
    }


def copy_recall_at_1(embeddings: Path, truth: set[frozenset]) -> float:
    """Invariance: share of copies whose nearest original (raw cosine) is their own."""
    names, vectors = [], []
    dim = EmbeddingDir.open(embeddings).dim
    for batch in iter_batches(embeddings, ["source", "embedding"]):
        names += [Path(s).name for s in batch.column("source").to_pylist()]
        vectors.append(embedding_matrix(batch.column("embedding"), dim))
    x = np.concatenate(vectors)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    originals = [i for i, n in enumerate(names) if n.startswith("o_")]
    copies = [i for i, n in enumerate(names) if n.startswith("c_")]
    nearest = np.asarray(originals)[(x[copies] @ x[originals].T).argmax(axis=1)]
    hits = [frozenset((names[c], names[o])) in truth for c, o in zip(copies, nearest, strict=True)]
    return float(np.mean(hits))


def own_phash_rows(folder: Path, truth: set) -> list[list]:
    """embedsearch's pHash alone: at the stage's distance and at its best (oracle) distance."""
    paths = sorted(folder.iterdir())
    names = [p.name for p in paths]
    hashes, readable = phash_files(paths)
    a, b, d = phash_pairs(hashes, 64, readable)
    dist = np.full((len(names), len(names)), 64.0)
    dist[a, b] = d
    dist[b, a] = d
    oracle, at = best_f1(names, dist, truth, higher_is_closer=False)
    rows = []
    for label, t in (
        (f"pHash (ours), {DEFAULT_PHASH_DISTANCE}", DEFAULT_PHASH_DISTANCE),
        (f"pHash (ours), best {int(at)}", int(at)),
    ):
        keep = d <= t
        p, r, f = prf(
            {frozenset((names[i], names[j])) for i, j in zip(a[keep], b[keep], strict=True)}, truth
        )
        rows.append([label, *(f"{v:.3f}" for v in (p, r, f)), "-", "-"])
    return rows


def one_set(args: argparse.Namespace, strength: str, seed: int, root: Path, train: Path) -> dict:
    work_set = root / f"{strength}-{seed}"
    folder = work_set / "images"
    truth = {frozenset(t) for t in write_set(folder, strength, 300, 48, seed)}
    out, log = work_set / "out", work_set / "command.log"
    timing = run_command(folder, out, root / "work", train, log, args.command_args.split())
    summary = json.loads((out / "dedup.json").read_text())
    p, r, f = prf(found_pairs(out), truth)
    rows = [
        [
            "embedsearch dedup FOLDER (defaults)",
            f"{p:.3f}",
            f"{r:.3f}",
            f"{f:.3f}",
            f"{timing['wall_s']:.0f}",
            f"{timing['cpu_s']:.0f}",
        ]
    ]
    # The same calibration (threshold, whitening, local scaling) without the pHash stage; given,
    # it embeds nothing.
    plain = find_duplicates(
        root / "work" / "embeddings",
        out=work_set / "no-phash",
        threshold=summary["threshold"],
        whiten=summary["whitening"].startswith("whitened"),
        local_scaling=summary["local_scaling"].startswith("on"),
        phash=None,
    )
    p0, r0, f0 = prf(found_pairs(plain.out), truth)
    rows.append(
        ["... same vectors, no pHash stage", f"{p0:.3f}", f"{r0:.3f}", f"{f0:.3f}", "-", "-"]
    )
    recall = copy_recall_at_1(root / "work" / "embeddings", truth)
    rows += own_phash_rows(folder, truth)
    if Path(args.phash_python).exists():
        for row in phash_rows(args.phash_python, folder, truth):
            label, _, _, prec, rec, f1 = row[:6]
            rows.append([f"imagededup {label[4:]}", prec, rec, f1, "-", "-"])
    print(
        f"\n{strength} copies, seed {seed} (load {timing['load_before']:.2f} -> "
        f"{timing['load_after']:.2f}; phash-only pairs {summary.get('phash_pairs')}; "
        f"copy -> original recall@1 {recall:.3f}):"
    )
    print_table(["method", "precision", "recall", "F1", "wall s", "CPU s"], rows)
    print("command log:", *log.read_text().splitlines()[:6], sep="\n  ")
    return {"strength": strength, "seed": seed, "rows": rows, "timing": timing, "recall": recall}


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--strengths", nargs="+", default=["mild", "strong"])
    p.add_argument("--phash-python", default="/root/venv-imagededup/bin/python")
    p.add_argument("--root", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument(
        "--command-args", default="", help="extra options (to try the script: '--epochs 1')"
    )
    args = p.parse_args()
    print(f"machine: {machine()}; load {os.getloadavg()}")
    root = args.root or Path(tempfile.mkdtemp(prefix="dedup-folder-"))
    train = root / "train"
    if not train.exists():
        train.mkdir(parents=True)
        for i, image in enumerate(make_copy_set(2000, 300, "strong", 48, seed=0).train):
            image.save(train / f"t_{i:05d}.png")
    results = [
        one_set(args, strength, seed, root, train)
        for seed in args.seeds
        for strength in args.strengths
    ]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
