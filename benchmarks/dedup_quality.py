"""Dedup quality on real photos: pairwise precision / recall / F1 at the DEFAULT threshold.

The copy-detection set (``embedsearch.data.copies``) cuts ``--n-corpus`` distinct crops
from scikit-image's sample photos and makes one transformed, JPEG-compressed copy of
each, ``mild`` and ``strong``. All originals and copies go into one folder; a pair is
a true duplicate when it is (original, its copy). Compared side by side:

- (a) a SimCLR encoder pretrained on the set's *train* crops (``--simclr-run``, a run dir
  from ``embedsearch pretrain simclr``; the train crops never show corpus pixels), embedded
  with ``--flip-average`` and deduplicated with the defaults (whitening on), then without
  flip averaging, then without whitening, to show what each step adds,
- (a2) with ``--pretrain-epochs E``: SimCLR pretrained on the folder being deduplicated itself
  (what a user does: ``pretrain simclr`` on their own images, then ``embed`` and ``dedup``;
  no labels are used, the copies are just more images), with the recipe of (a),
- (b) the same architecture at random init (``simclr:resnet18``, flip-averaged, defaults),
- (c) imagededup's PHash (its own virtualenv, ``benchmarks/setup_imagededup_venv.sh``)
  at its default Hamming threshold 10 and at its best threshold (an oracle choice).

(a), (a2) and (b) go through the real pipeline: ``embed`` -> ``find_duplicates`` with the
default threshold; "best" columns show the F1 an oracle threshold would reach on the
vectors dedup compared (whitened when it whitened).

    flock /tmp/embedsearch-bench.lock python benchmarks/dedup_quality.py --simclr-run RUN_DIR \
        --pretrain-epochs 60
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, print_table

from embedsearch import find_duplicates
from embedsearch.data.copies import make_copy_set
from embedsearch.dedup.whitening import fit_whitening
from embedsearch.embedding import embed
from embedsearch.store.reader import embedding_matrix, iter_batches

PHASH_SCRIPT = r"""
import json, sys
from pathlib import Path
import numpy as np
from imagededup.methods import PHash
folder = Path(sys.argv[1])
hashes = PHash(verbose=False).encode_images(image_dir=str(folder))
names = sorted(hashes)
bits = np.array([[int(c, 16) >> s & 1 for c in hashes[n] for s in (3, 2, 1, 0)]
                 for n in names], dtype=np.uint8)
dist = (bits[:, None, :] != bits[None, :, :]).sum(-1)
i, j = np.nonzero(np.triu(dist <= 32, 1))
print(json.dumps({"names": names, "i": i.tolist(), "j": j.tolist(), "d": dist[i, j].tolist()}))
"""


def write_set(
    folder: Path, strength: str, n_corpus: int, size: int, seed: int
) -> set[tuple[str, str]]:
    """Originals ``o_*.png`` and copies ``c_*.jpg`` in one folder -> the set of true pairs."""
    copy_set = make_copy_set(0, n_corpus, strength=strength, size=size, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(copy_set.corpus):
        image.save(folder / f"o_{i:05d}.png")
    for i, image in enumerate(copy_set.copies):
        image.save(folder / f"c_{i:05d}.jpg", quality="keep")
    return {(f"o_{o:05d}.png", f"c_{i:05d}.jpg") for i, o in enumerate(copy_set.copy_of.tolist())}


def prf(found: set[frozenset], truth: set[frozenset]) -> tuple[float, float, float]:
    tp = len(found & truth)
    p = tp / len(found) if found else 0.0
    r = tp / len(truth)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def best_f1(
    names: list[str], scores: np.ndarray, truth: set[frozenset], higher_is_closer: bool
) -> tuple[float, float]:
    """(best F1, its threshold) over every distinct score of all pairs (the oracle)."""
    i, j = np.triu_indices(len(names), 1)
    s = scores[i, j] if higher_is_closer else -scores[i, j]
    is_true = np.array(
        [frozenset((names[a], names[b])) in truth for a, b in zip(i, j, strict=False)]
    )
    order = np.argsort(-s)
    tp = np.cumsum(is_true[order])
    k = np.arange(1, len(order) + 1)
    f1 = 2 * tp / (k + len(truth))
    best = int(np.argmax(f1))
    return float(f1[best]), float(s[order][best] if higher_is_closer else -s[order][best])


def encoder_rows(
    label: str,
    model: str,
    folder: Path,
    work: Path,
    truth: set,
    image_size: int,
    flip: bool = True,
    whiten: bool | None = None,
) -> list:
    emb = work / f"emb-{abs(hash((model, flip)))}"
    size = None if Path(model).is_dir() else image_size  # a run dir knows its own input size
    if not emb.exists():
        embed(
            folder,
            model=model,
            out=emb,
            image_size=size,
            workers=0,
            batch_size=128,
            flip_average=flip,
        )
    started = time.perf_counter()
    result = find_duplicates(emb, out=work / f"dedup-{abs(hash(label))}", whiten=whiten)
    seconds = time.perf_counter() - started
    pairs = pd.read_parquet(result.out / "pairs.parquet", columns=["source_a", "source_b"])
    found = {
        frozenset((Path(a).name, Path(b).name))
        for a, b in zip(pairs.source_a, pairs.source_b, strict=False)
    }
    p, r, f = prf(found, truth)
    names, vectors = [], []
    for batch in iter_batches(emb, ["source", "embedding"]):
        names += [Path(s).name for s in batch.column("source").to_pylist()]
        vectors.append(embedding_matrix(batch.column("embedding"), result_dim(emb)))
    x = np.concatenate(vectors)
    if result.space != "raw cosine":
        x = fit_whitening(x)(x)  # the same fit dedup made: the whole set is its sample here
    oracle, at = best_f1(names, x @ x.T, truth, higher_is_closer=True)
    space = "whitened" if result.space != "raw cosine" else "raw"
    return [
        label,
        space,
        f"{result.threshold:.4f}",
        *(f"{v:.3f}" for v in (p, r, f, oracle)),
        f"{at:.4f}",
        seconds,
    ]


def pretrain_on(folder: Path, out: Path, args: argparse.Namespace) -> Path:
    """``embedsearch pretrain simclr`` on the dedup folder itself, with the recipe of issue 4's
    benchmark."""
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "embedsearch",
            "pretrain",
            "simclr",
            str(folder),
            "--out",
            str(out),
            "--arch",
            "resnet18",
            "--image-size",
            str(args.image_size),
            "--stem",
            "standard",
            "--epochs",
            str(args.pretrain_epochs),
            "--batch-size",
            "128",
            "--lr",
            "0.6",
            "--temperature",
            "0.1",
            "--crop-min-scale",
            "0.3",
            "--jpeg-prob",
            "0.5",
            "--threads",
            "2",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    print(
        f"pretrained on {folder} for {args.pretrain_epochs} epochs in "
        f"{time.perf_counter() - started:.0f} s"
    )
    return out


def result_dim(emb: Path) -> int:
    return json.loads((emb / "manifest.json").read_text())["dim"]


def phash_rows(python: str, folder: Path, truth: set) -> list[list]:
    out = subprocess.run(
        [python, "-c", PHASH_SCRIPT, str(folder)], capture_output=True, text=True, check=True
    )
    data = json.loads(out.stdout)
    names = data["names"]
    dist = np.full((len(names), len(names)), 64, dtype=np.int64)
    dist[data["i"], data["j"]] = data["d"]
    dist[data["j"], data["i"]] = data["d"]
    rows = []
    oracle, at = best_f1(names, dist.astype(np.float64), truth, higher_is_closer=False)
    for label, t in (("(c) PHash, default 10", 10), (f"(c) PHash, best {int(at)}", int(at))):
        i, j = np.nonzero(np.triu(dist <= t, 1))
        p, r, f = prf({frozenset((names[a], names[b])) for a, b in zip(i, j, strict=False)}, truth)
        rows.append(
            [label, "hash", str(t), *(f"{v:.3f}" for v in (p, r, f, oracle)), str(int(at)), "-"]
        )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--simclr-run",
        type=Path,
        default=None,
        help="run dir of `embedsearch pretrain simclr` on the train crops",
    )
    p.add_argument("--n-corpus", type=int, default=300)
    p.add_argument("--size", type=int, default=48)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--pretrain-epochs",
        type=int,
        default=0,
        help="also pretrain SimCLR on each folder being deduplicated for this many epochs (row a2)",
    )
    p.add_argument("--phash-python", default="/root/venv-imagededup/bin/python")
    args = p.parse_args()
    import torch

    torch.set_num_threads(2)
    print(f"machine: {machine()}")
    headers = [
        "method",
        "scores",
        "threshold",
        "precision",
        "recall",
        "F1",
        "best F1",
        "at",
        "dedup s",
    ]
    for strength in ("mild", "strong"):
        work = Path(tempfile.mkdtemp(prefix=f"dedup-quality-{strength}-"))
        folder = work / "images"
        truth = {
            frozenset(t) for t in write_set(folder, strength, args.n_corpus, args.size, args.seed)
        }
        rows = []
        if args.simclr_run is not None:
            run = str(args.simclr_run)
            rows.append(
                encoder_rows("(a) SimCLR, train crops", run, folder, work, truth, args.image_size)
            )
            rows.append(
                encoder_rows(
                    "(a) ... no flip average", run, folder, work, truth, args.image_size, flip=False
                )
            )
            rows.append(
                encoder_rows(
                    "(a) ... --no-whiten", run, folder, work, truth, args.image_size, whiten=False
                )
            )
            rows.append(
                encoder_rows(
                    "(a) ... neither",
                    run,
                    folder,
                    work,
                    truth,
                    args.image_size,
                    flip=False,
                    whiten=False,
                )
            )
        if args.pretrain_epochs:
            run = pretrain_on(folder, work / "simclr-on-set", args)
            rows.append(
                encoder_rows(
                    "(a2) SimCLR, on the set", str(run), folder, work, truth, args.image_size
                )
            )
        rows.append(
            encoder_rows(
                "(b) random-init resnet18", "simclr:resnet18", folder, work, truth, args.image_size
            )
        )
        if Path(args.phash_python).exists():
            rows += phash_rows(args.phash_python, folder, truth)
        print(
            f"\n{strength} copies: {args.n_corpus} originals + {len(truth)} copies, {args.size} px "
            f"({len(truth)} true pairs among "
            f"{(2 * args.n_corpus) * (2 * args.n_corpus - 1) // 2:,})"
        )
        print_table(headers, rows)


if __name__ == "__main__":
    main()
