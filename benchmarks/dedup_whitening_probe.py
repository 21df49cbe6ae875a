"""Probe: would PCA-whitening the embeddings help near-duplicate detection on strong copies?

Reads an embedding dir of the copy-detection folder written by ``dedup_quality.py``
(originals ``o_NNNNN.png``, copies ``c_NNNNN.jpg``, copy i of original i) and reports the
best pairwise F1 any threshold reaches (an oracle) for the raw cosine, for vectors centred on
the corpus mean, and for PCA-whitened vectors (fit on the same corpus, unsupervised) at a few
output sizes and whitening powers. It measured the headroom before ``dedup`` learned to whiten
(:mod:`embedsearch.dedup.whitening`).

    python benchmarks/dedup_whitening_probe.py \
        "/tmp/dedup-quality-strong-XXXX/emb-(a) SimCLR pretrained"
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
from common import print_table

from embedsearch.store.reader import iter_batches


def load(emb_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """-> (vectors, true-pair mask over the upper triangle) for a copy-set embedding dir."""
    names, vectors = [], []
    for batch in iter_batches(emb_dir, columns=["source", "embedding"]):
        names += [Path(s).name for s in batch.column("source").to_pylist()]
        vectors.append(np.asarray(batch.column("embedding").to_pylist(), np.float32))
    index = {name: i for i, name in enumerate(names)}
    truth = set()
    for name in names:
        match = re.fullmatch(r"c_(\d+)\.jpg", name)
        if match and f"o_{match.group(1)}.png" in index:
            truth.add(
                (
                    min(index[name], index[f"o_{match.group(1)}.png"]),
                    max(index[name], index[f"o_{match.group(1)}.png"]),
                )
            )
    i, j = np.triu_indices(len(names), 1)
    is_true = np.fromiter(((a, b) in truth for a, b in zip(i, j, strict=False)), bool, count=len(i))
    return np.concatenate(vectors), is_true


def oracle_f1(vectors: np.ndarray, is_true: np.ndarray) -> tuple[float, float]:
    """(best F1 over all thresholds, that threshold) for cosine scores of every pair."""
    v = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = (v @ v.T)[np.triu_indices(len(v), 1)]
    order = np.argsort(-scores)
    tp = np.cumsum(is_true[order])
    f1 = 2 * tp / (np.arange(1, len(order) + 1) + is_true.sum())
    best = int(np.argmax(f1))
    return float(f1[best]), float(scores[order][best])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("emb_dir", type=Path)
    args = parser.parse_args()
    x, is_true = load(args.emb_dir)
    mean = x.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov((x - mean).T))
    eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
    rows = [
        ["raw cosine", *oracle_f1(x, is_true)],
        ["centred on the corpus mean", *oracle_f1(x - mean, is_true)],
    ]
    for dims in (64, 128, 256):
        for power in (0.5, 1.0):
            # power 1: full whitening; 0.5: eigenvalues only square-rooted (softer, keeps scale).
            w = eigenvectors[:, :dims] / (eigenvalues[:dims] + 1e-6 * eigenvalues[0]) ** (power / 2)
            rows.append(
                [f"PCA-whitened, {dims} dims, power {power}", *oracle_f1((x - mean) @ w, is_true)]
            )
    print(f"{len(x)} vectors, {int(is_true.sum())} true pairs among {len(is_true)}")
    print_table(["vectors", "oracle F1", "at cosine"], rows)


if __name__ == "__main__":
    main()
