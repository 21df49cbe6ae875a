"""What open_clip-exact preprocessing costs ``embed``: end to end, before vs after, side by side.

``after`` is ``embed`` as it is (full decode, open_clip's resize and crop); ``before`` is the
same run with the previous shortcuts patched back in (JPEG draft at 2x the model size,
``reducing_gap=3``). Model ``openclip:ViT-B-32`` (seeded random init: nothing downloads; same
compute as the pretrained weights), photo JPEGs from ``skimage.data`` at 1.15x and 4x the model
size, default workers. Sides alternate; medians over ``--rounds``.

    python benchmarks/preprocess_cost.py [--images 48] [--rounds 3] [--model openclip:ViT-B-32]
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from common import machine, print_table
from preprocess_parity import legacy_geometry, source_file

import embedsearch.data.batches as batches
from embedsearch.data.decode import decode_image
from embedsearch.embedding import embed
from embedsearch.encoders.base import ImagePreprocess

SIZE = 224


@contextmanager
def legacy_shortcuts() -> Iterator[None]:
    """Patch in the pre-issue-12 path: draft decoding + the old resize (DataLoader forks)."""
    old_call, old_decode = ImagePreprocess.__call__, batches.decode_image

    def call(self: ImagePreprocess, image: object) -> object:
        return legacy_geometry(image, self)  # type: ignore[arg-type]

    ImagePreprocess.__call__ = call  # type: ignore[method-assign]
    batches.decode_image = functools.partial(decode_image, draft_size=SIZE)  # type: ignore
    try:
        yield
    finally:
        ImagePreprocess.__call__ = old_call  # type: ignore[method-assign]
        batches.decode_image = old_decode


def photo_folder(folder: Path, n: int, scale: float) -> Path:
    from skimage import data as skdata

    folder.mkdir(parents=True)
    photos = [skdata.chelsea(), skdata.coffee(), skdata.astronaut()]
    for i in range(n):
        blob = source_file(photos[i % 3], round(SIZE * scale) + i, "JPEG")  # distinct files
        (folder / f"{i:04d}.jpg").write_bytes(blob)
    return folder


def images_per_second(folder: Path, model: str, out: Path, n: int) -> float:
    start = time.perf_counter()
    embed(folder, model=model, out=out, device="cpu", batch_size=16)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="openclip:ViT-B-32")
    args = parser.parse_args()
    print("load before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, scale in (("1.15x", 1.15), ("4x", 4.0)):
            folder = photo_folder(Path(tmp) / label, args.images, scale)
            speeds: dict[str, list[float]] = {"before": [], "after": []}
            images_per_second(folder, args.model, Path(tmp) / f"warm-{label}", args.images)
            for r in range(args.rounds):
                for side in ("before", "after") if r % 2 == 0 else ("after", "before"):
                    out = Path(tmp) / f"emb-{label}-{side}-{r}"
                    if side == "before":
                        with legacy_shortcuts():
                            speed = images_per_second(folder, args.model, out, args.images)
                    else:
                        speed = images_per_second(folder, args.model, out, args.images)
                    speeds[side].append(speed)
            before, after = (float(np.median(speeds[s])) for s in ("before", "after"))
            rows.append(
                [f"{label} source JPEG", f"{before:.2f}", f"{after:.2f}", f"{after / before:.3f}"]
            )
    print_table(["source", "before img/s", "after img/s", "after/before"], rows)
    print("load after:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print(
        f"{args.model}, {args.images} images, {args.rounds} rounds, cpu, "
        f"workers default ({os.cpu_count()} cores); {machine()}"
    )


if __name__ == "__main__":
    main()
