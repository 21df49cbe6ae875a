"""Centring on real photo embeddings (issue 19): raw vs centred cosine, same vectors.

scikit-image's sample photos, each with random crops (resized back), embedded with an untrained
``simclr:resnet18`` (the concentrated case: all-positive features). Measured for raw and for
centred cosine: the mean pairwise cosine, copy-detection recall@1 (a crop's best other hit is
another crop of its photo or the photo), the best-threshold F1 of "same photo" pairs (dedup), and
recall@10 of ``--kind ivfpq`` against exact search by the same similarity.

    python benchmarks/centring_photos.py --crops 12
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

PHOTOS = [
    "astronaut",
    "camera",
    "cat",
    "coffee",
    "chelsea",
    "rocket",
    "motorcycle_left",
    "hubble_deep_field",
    "immunohistochemistry",
    "coins",
    "moon",
    "page",
    "text",
    "horse",
    "grass",
    "gravel",
    "brick",
    "colorwheel",
    "retina",
    "skin",
]


def photo_crops(crops: int, seed: int = 0):
    from PIL import Image
    from skimage import data

    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, name in enumerate(PHOTOS):
        try:
            pixels = getattr(data, name)()
        except Exception:  # noqa: BLE001 - a photo this scikit-image lacks (or needs pooch)
            continue
        image = Image.fromarray(pixels).convert("RGB")
        images.append(image)
        labels.append(label)
        w, h = image.size
        for _ in range(crops):
            s = rng.uniform(0.5, 0.9)
            cw, ch = int(w * s), int(h * s)
            x, y = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
            images.append(image.crop((x, y, x + cw, y + ch)).resize((w, h)))
            labels.append(label)
    return images, np.array(labels)


def copy_recall_and_f1(x: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    top1 = labels[sims.argmax(1)] == labels
    iu = np.triu_indices(len(x), 1)
    scores, same = sims[iu], (labels[:, None] == labels[None, :])[iu]
    order = np.argsort(-scores)
    tp = np.cumsum(same[order])
    precision, recall = tp / np.arange(1, len(order) + 1), tp / same.sum()
    f1 = np.max(2 * precision * recall / np.maximum(precision + recall, 1e-9))
    return float(top1.mean()), float(f1)


def index_copy_recall(path: Path, x: np.ndarray, labels: np.ndarray) -> float:
    """Copy-detection recall@1 through the built index (its own row skipped)."""
    from embedsearch.index import Searcher

    _, keys = Searcher.open(path).search_raw(x, 2)
    best = np.where(keys[:, 0] == np.arange(len(x)), keys[:, 1], keys[:, 0])
    return float((labels[best] == labels).mean())


def embed_crops(images: list, model: str, image_size: int) -> np.ndarray:
    """The crops' vectors with ``model`` (a run dir keeps its own size), 64 images at a time."""
    import torch

    from embedsearch.encoders import load_encoder

    size = None if Path(model).is_dir() else image_size
    encoder = load_encoder(model, image_size=size)
    with torch.no_grad():
        return np.concatenate(
            [
                encoder.embed_images(
                    torch.stack([encoder.preprocess(i) for i in images[s : s + 64]])
                )
                for s in range(0, len(images), 64)
            ]
        )


def main() -> None:

    from embedsearch.index import build_index
    from embedsearch.index.centring import centred, concentration
    from embedsearch.store.arrays import write_embedding_dir

    parser = argparse.ArgumentParser()
    parser.add_argument("--crops", type=int, default=12)
    parser.add_argument("--model", default="simclr:resnet18")
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args()
    images, labels = photo_crops(args.crops)
    x = embed_crops(images, args.model, args.image_size)
    print(f"{len(images)} images of {len(set(labels))} photos, model {args.model}")
    print("similarity       mean-cos  copy-recall@1 exact/ivfpq  dedup-F1  ivfpq-recall@10")
    with tempfile.TemporaryDirectory() as tmp:
        emb = Path(tmp) / "emb"
        write_embedding_dir(emb, x, model="external:photos", fingerprint="fp")
        for name, vectors, centre in (
            ("raw cosine", x, "no"),
            ("centred", centred(x, x.mean(0)), "yes"),
        ):
            r1, f1 = copy_recall_and_f1(vectors, labels)
            s = build_index([emb], Path(tmp) / name, kind="ivfpq", centre=centre, overwrite=True)
            r1_index = index_copy_recall(Path(tmp) / name, x, labels)
            print(
                f"{name:15s}  {concentration(vectors):8.3f}  {r1:11.3f} / {r1_index:.3f}  "
                f"{f1:8.3f}  {s.recall:.3f} ({s.search_params})"
            )


if __name__ == "__main__":
    main()
