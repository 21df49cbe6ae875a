"""What the `pct` column of `query` tells a reader (issue 17, item 7), on real photos.

scikit-image's sample photos with random crops (as in ``centring_photos.py``), embedded with a
model; a flat index (raw cosine, and ``--centre yes``) is built and every row is queried by id
(k = 10, itself left out). For hits of the same photo and hits of other photos: the median raw
score and the median percentile (the % of the index's random pairs scoring lower, read from the
``score_percentiles`` recorded at build time, what ``query`` prints as ``pct``), and the share
of each at pct >= 99 (above every recorded percentile).

    python benchmarks/score_percentiles.py --crops 12
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from centring_photos import embed_crops, photo_crops


def hit_figures(index: Path, labels: np.ndarray, k: int = 10) -> dict[str, float]:
    from embedsearch.index import Searcher
    from embedsearch.index.scores import ScoreScale

    searcher = Searcher.open(index)
    info = searcher.index_info
    scale = ScoreScale.of(info.score_percentiles, info.similarity)
    same_scores, other_scores = [], []
    for row in range(len(labels)):
        for hit in searcher.search_id(row, k + 1):
            if hit.id != row:
                (same_scores if labels[hit.id] == labels[row] else other_scores).append(hit.score)
    figures = {}
    for name, scores in (("same photo", same_scores), ("other photo", other_scores)):
        pct = np.array([scale.percentile(s) for s in scores], np.float64)
        figures[f"{name}: hits"] = float(len(scores))
        figures[f"{name}: median score"] = float(np.median(scores))
        figures[f"{name}: median pct"] = float(np.median(pct))
        figures[f"{name}: share pct>=99"] = float((pct >= 99).mean())
    return figures


def main() -> None:

    from embedsearch.index import build_index
    from embedsearch.store.arrays import write_embedding_dir

    parser = argparse.ArgumentParser()
    parser.add_argument("--crops", type=int, default=12)
    parser.add_argument("--model", default="simclr:resnet18")
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args()
    images, labels = photo_crops(args.crops)
    x = embed_crops(images, args.model, args.image_size)
    print(f"{len(images)} images of {len(set(labels))} photos, model {args.model}")
    with tempfile.TemporaryDirectory() as tmp:
        emb = Path(tmp) / "emb"
        write_embedding_dir(emb, x, ids=np.arange(len(x)), model="external:photos")
        rows = {}
        for centre in ("no", "yes"):
            build_index([emb], Path(tmp) / centre, kind="flat", centre=centre)
            rows[centre] = hit_figures(Path(tmp) / centre, labels)
    print("| figure | raw cosine | centred |")
    for name in rows["no"]:
        print(f"| {name} | {rows['no'][name]:.3f} | {rows['yes'][name]:.3f} |")


if __name__ == "__main__":
    main()
