"""Pixels fed to the model vs open_clip's own eval transform, for every distinct preprocess_cfg.

For each distinct ``preprocess_cfg`` among ``open_clip.list_pretrained()`` (from
``get_pretrained_cfg``, offline), real photos from ``skimage.data`` resized to sources smaller
than, near and 4x the model size, saved as JPEG (q90) and PNG: mean / max |delta| (normalised
units) between what ``embed`` feeds the model and ``open_clip.image_transform(...)`` on the same
file opened with ``PIL.Image.open(...).convert("RGB")``. ``before`` is the previous preprocessing
(bicubic, shortest side, ``reducing_gap=3``, JPEG draft at 2x), ``after`` the current one.

    python benchmarks/preprocess_parity.py [--photos astronaut coffee chelsea] [--markdown]
"""

from __future__ import annotations

import argparse
import io
import json
from typing import Any

import numpy as np
import torch
from common import machine, print_table
from PIL import Image

from embedsearch.data.decode import decode_image
from embedsearch.encoders.base import ImagePreprocess
from embedsearch.encoders.openclip import preprocess_cfg_of

SCALES = {"small": 0.5, "near": 1.15, "4x": 4.0}  # source shorter side / model size


def distinct_preprocess_cfgs() -> list[tuple[str, dict[str, Any], int]]:
    """(example tag, cfg, tag count) for each distinct eval preprocessing, offline."""
    import open_clip

    found: dict[str, list[Any]] = {}
    for arch, tag in open_clip.list_pretrained():
        model_cfg = open_clip.get_model_config(arch) or {}
        pp = {"size": model_cfg.get("vision_cfg", {}).get("image_size", 224)}
        pp.update(open_clip.get_pretrained_cfg(arch, tag))  # what create_model merges
        cfg = preprocess_cfg_of(
            {
                **{
                    "mean": (0.48145466, 0.4578275, 0.40821073),
                    "std": (0.26862954, 0.26130258, 0.27577711),
                },
                **pp,
            }
        )
        key = json.dumps(cfg, sort_keys=True)
        found.setdefault(key, [f"{arch}/{tag}", cfg, 0])[2] += 1
    return [tuple(v) for v in found.values()]  # type: ignore[misc]


def source_file(photo: np.ndarray, short_side: int, fmt: str) -> bytes:
    """The photo at ``short_side``; larger than the photo: a mosaic of it at native resolution
    (real detail, not an upscaled blur), downscaled."""
    tile = Image.fromarray(photo).convert("RGB")
    n = -(-short_side // min(tile.size))
    image = Image.new("RGB", (tile.width * n, tile.height * n))
    for i in range(n):
        for j in range(n):
            image.paste(tile, (i * tile.width, j * tile.height))
    scale = short_side / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def legacy_pixels(data: bytes, pp: ImagePreprocess) -> torch.Tensor:
    """The preprocessing before issue 12: JPEG draft at 2x, reducing_gap=3, bicubic shortest."""
    return legacy_geometry(decode_image(data, draft_size=pp.draft_size), pp)


def legacy_geometry(image: Image.Image, pp: ImagePreprocess) -> torch.Tensor:
    """The old resize (bicubic, shortest side, ``reducing_gap=3``, floor crop) and normalise."""
    size = pp.draft_size
    w, h = image.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((new_w, new_h), Image.Resampling.BICUBIC, reducing_gap=3.0)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    image = image.crop((left, top, left + size, top + size))
    array = np.asarray(image, dtype=np.float32) / 255.0
    scaled = (array - np.asarray(pp.mean, np.float32)) / np.asarray(pp.std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(scaled.transpose(2, 0, 1)))


def reference_pixels(data: bytes, cfg: dict[str, Any]) -> torch.Tensor:
    import open_clip

    size = cfg["size"] if isinstance(cfg["size"], int) else tuple(cfg["size"])
    transform = open_clip.image_transform(
        size,
        False,
        cfg["mean"],
        cfg["std"],
        cfg["resize_mode"],
        cfg["interpolation"],
        cfg["fill_color"],
    )
    return transform(Image.open(io.BytesIO(data)).convert("RGB"))


def ours_pixels(data: bytes, pp: ImagePreprocess) -> torch.Tensor:
    return pp(decode_image(data))  # as embed does since issue 12: no draft


def delta(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    if a.shape != b.shape:
        return float("inf"), float("inf")
    d = (a - b).abs()
    return float(d.mean()), float(d.max())


def throughput(photo: np.ndarray, size: int, n: int, rounds: int) -> dict[str, float]:
    """Images/s of decode + preprocess, before vs after, alternated; medians over ``rounds``."""
    import time

    cfg = {"size": size, "mean": (0.5,) * 3, "std": (0.5,) * 3}
    pp = ImagePreprocess.of_cfg(cfg)
    blobs = {
        f"{label} src": source_file(photo, round(size * scale), "JPEG")
        for label, scale in (("1.15x", 1.15), ("4x", 4.0))
    }
    results: dict[str, list[float]] = {}
    for _ in range(rounds):
        for label, blob in blobs.items():
            for side, fn in (("before", legacy_pixels), ("after", ours_pixels)):
                start = time.perf_counter()
                for _ in range(n):
                    fn(blob, pp)
                results.setdefault(f"{label} {side}", []).append(n / (time.perf_counter() - start))
    return {k: float(np.median(v)) for k, v in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", nargs="+", default=["astronaut", "coffee", "chelsea"])
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--throughput-images", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from skimage import data as skdata

    photos = {name: getattr(skdata, name)() for name in args.photos}
    rows, worst = [], {"before": 0.0, "after": 0.0}
    for example, cfg, count in distinct_preprocess_cfgs():
        pp = ImagePreprocess.of_cfg(cfg)
        size = pp.draft_size
        for scale_name, scale in SCALES.items():
            for fmt in ("JPEG", "PNG"):
                stats: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
                for photo in photos.values():
                    blob = source_file(photo, round(size * scale), fmt)
                    ref = reference_pixels(blob, cfg)
                    stats["before"].append(delta(legacy_pixels(blob, pp), ref))
                    stats["after"].append(delta(ours_pixels(blob, pp), ref))
                cells = []
                for side in ("before", "after"):
                    mean = max(m for m, _ in stats[side])
                    worst[side] = max(worst[side], mean)
                    cells += [f"{mean:.4f}", f"{max(x for _, x in stats[side]):.3f}"]
                label = f"{cfg['size']} {cfg['interpolation']} {cfg['resize_mode']}"
                rows.append([f"{label} ({example}, {count} tags)", scale_name, fmt, *cells])
    headers = [
        "preprocess_cfg",
        "source",
        "fmt",
        "before mean",
        "before max",
        "after mean",
        "after max",
    ]
    if args.markdown:
        print("| " + " | ".join(headers) + " |")
        print("|" + "---|" * len(headers))
        for row in rows:
            print("| " + " | ".join(str(c) for c in row) + " |")
    else:
        print_table(headers, rows)
    speed = throughput(photos[args.photos[0]], 224, args.throughput_images, args.rounds)
    print("\ndecode + preprocess to 224 px, JPEG, images/s (median of alternated rounds):")
    for label in ("1.15x src", "4x src"):
        before, after = speed[f"{label} before"], speed[f"{label} after"]
        print(
            f"  {label}: before {before:.1f}, after {after:.1f}, after/before {after / before:.2f}"
        )
    print(
        f"\nworst mean |delta| over photos/cells: before {worst['before']:.4f}, "
        f"after {worst['after']:.4f}  ({machine()})"
    )


if __name__ == "__main__":
    main()
