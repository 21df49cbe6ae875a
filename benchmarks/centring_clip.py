"""Centring on CLIP text -> image search (issue 17, item 7): raw vs centred cosine, same vectors.

Issue 19 measured centring on SimCLR photo embeddings (copy recall, dedup F1) but not on CLIP,
whose text queries would be centred by a mean learned from *images*. This reads a finished
``embedsearch demo`` folder (its trained tiny CLIP, image embeddings and held-out split), embeds
the held-out captions and measures, for raw cosine and for centred cosine (image mean removed from
both sides, then re-normalised: what an index built with ``--centre yes`` does):

- held-out text -> image recall@1 / @5 among the held-out images (the demo's protocol)
- how far scores spread: the median score of each caption's own image and of random
  caption-image pairs, and the share of random pairs the own image out-scores (its percentile,
  what `query` now prints as ``pct``)

    python benchmarks/centring_clip.py DEMO_DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def load(demo: Path):
    from embedsearch.data.pairs import load_pairs
    from embedsearch.encoders import load_encoder
    from embedsearch.store.reader import iter_vector_batches
    from embedsearch.train.clip import heldout_split

    pairs = load_pairs(demo / "corpus" / "pairs.csv", check_images=False)
    _, val = heldout_split(pairs, 0.1, 0)
    held = pairs.subset(val)
    sources: list[str] = []
    parts = []
    for batch, vectors in iter_vector_batches(demo / "embeddings", ["source"], 65_536):
        sources += batch.column("source").to_pylist()
        parts.append(vectors)
    return held, sources, np.concatenate(parts), load_encoder(str(demo / "model"))


def measure(images: np.ndarray, texts: np.ndarray, mean: np.ndarray | None) -> dict[str, float]:
    from embedsearch.index.centring import as_ranked

    img, txt = as_ranked(images, mean), as_ranked(texts, mean)
    scores = txt @ img.T  # caption i's own image is image i
    own = np.diag(scores)
    ranks = (scores > own[:, None]).sum(1)
    off = scores[~np.eye(len(scores), dtype=bool)]
    return {
        "recall@1": float((ranks < 1).mean()),
        "recall@5": float((ranks < 5).mean()),
        "own median": float(np.median(own)),
        "random median": float(np.median(off)),
        "random p99": float(np.percentile(off, 99)),
        "own pct (median)": float(np.median([(off < s).mean() * 100 for s in own])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("demo", type=Path, help="a finished `embedsearch demo` folder")
    args = parser.parse_args()
    held, sources, vectors, encoder = load(args.demo)
    position = {str(Path(s).resolve()): i for i, s in enumerate(sources)}
    rows = [position[str(Path(p).resolve())] for p in held.images]
    images = vectors[rows]
    texts = encoder.embed_texts(list(held.captions))
    mean = vectors.mean(0)  # what --centre yes learns: the image corpus's mean
    from embedsearch.index.centring import concentration

    print(
        f"{len(held)} held-out captions vs their images; {len(vectors)} image vectors, mean "
        f"pairwise cosine {concentration(vectors):.3f} (images), {concentration(texts):.3f} (texts)"
    )
    print(f"| similarity | {' | '.join(measure(images, texts, None))} |")
    for name, centre in (("raw cosine", None), ("centred (image mean)", mean)):
        figures = measure(images, texts, centre)
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in figures.values()) + " |")


if __name__ == "__main__":
    main()
