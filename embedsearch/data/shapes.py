"""A seeded synthetic captioned corpus: coloured shapes on varied backgrounds.

Every image shows one shape of a given kind, colour, size and position on a
light or dark textured background; its caption is drawn from a small grammar
with several paraphrases and synonyms, so a text encoder must learn meaning,
not one template. The corpus is tiny-CPU friendly (64 px PNGs) and fully
determined by ``(n, seed)``: item ``i`` depends only on ``seed`` and ``i``.

Layout written by :func:`make_shapes_corpus`::

    DIR/images/00000.png  DIR/images/00000.txt   (image + same-name caption)
    DIR/pairs.csv         filepath,caption,shape,color,size,position,background
    DIR/corpus.json       {"kind": "shapes", "n": ..., "seed": ..., "image_size": ...}

The corpus is generated in a temporary folder and renamed into place, so a corpus
dir that exists is complete.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from embedsearch.atomic import publish_dir, staged_dir, write_json_atomic
from embedsearch.errors import InputError
from embedsearch.progress import NullProgress, Progress

SHAPES = ("circle", "square", "triangle", "star", "cross")
# name -> base RGB; each image jitters it a little so colour is a range, not a value.
COLORS = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "yellow": (240, 210, 20),
    "purple": (140, 40, 180),
    "orange": (250, 130, 10),
}
SIZES = {"small": 0.28, "medium": 0.42, "large": 0.6}  # shape diameter / image side
POSITIONS = {
    "top left": (0.27, 0.27),
    "top right": (0.73, 0.27),
    "bottom left": (0.27, 0.73),
    "bottom right": (0.73, 0.73),
    "center": (0.5, 0.5),
}
BACKGROUNDS = ("light", "dark")

_SIZE_WORDS = {
    "small": ("small", "tiny"),
    "medium": ("medium", "medium-sized"),
    "large": ("large", "big"),
}
_POSITION_WORDS = {
    "top left": ("in the top left", "in the upper left corner"),
    "top right": ("in the top right", "in the upper right corner"),
    "bottom left": ("in the bottom left", "in the lower left corner"),
    "bottom right": ("in the bottom right", "in the lower right corner"),
    "center": ("in the center", "in the middle"),
}
_TEMPLATES = (
    "a {size} {color} {shape} {position}",
    "a {color} {shape}, {size}, {position}",
    "{position} there is a {size} {color} {shape}",
    "a photo of a {size} {color} {shape} {position} on a {background} background",
    "{size} {color} {shape} {position}, {background} background",
)
PAIRS_FILE = "pairs.csv"
CORPUS_FILE = "corpus.json"
COLUMNS = ("filepath", "caption", "shape", "color", "size", "position", "background")


@dataclass(frozen=True)
class ShapeItem:
    """One corpus item: its attributes and the caption that describes them."""

    shape: str
    color: str
    size: str
    position: str
    background: str
    caption: str


@dataclass(frozen=True)
class ShapesCorpus:
    """Where a generated corpus lives: ``root``, its ``pairs`` table and item count ``n``."""

    root: Path
    pairs: Path
    images: Path
    n: int
    seed: int


def describe_item(seed: int, index: int) -> ShapeItem:
    """The attributes and caption of item ``index`` (depends only on ``seed`` and ``index``).

    Example:
        >>> describe_item(0, 3).shape in SHAPES
        True
    """
    rng = np.random.default_rng([seed, index, 1])
    shape = SHAPES[rng.integers(len(SHAPES))]
    color = list(COLORS)[rng.integers(len(COLORS))]
    size = list(SIZES)[rng.integers(len(SIZES))]
    position = list(POSITIONS)[rng.integers(len(POSITIONS))]
    background = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    template = _TEMPLATES[rng.integers(len(_TEMPLATES))]
    caption = template.format(
        size=_SIZE_WORDS[size][rng.integers(2)],
        color=color,
        shape=shape,
        position=_POSITION_WORDS[position][rng.integers(2)],
        background=background,
    )
    caption = re.sub(r"\ba ([aeiou])", r"an \1", caption)  # "a orange star" -> "an orange star"
    return ShapeItem(shape, color, size, position, background, caption[0].upper() + caption[1:])


def render_item(item: ShapeItem, seed: int, index: int, image_size: int = 64) -> Image.Image:
    """Draw ``item`` as an RGB image (2x supersampled for smooth edges)."""
    rng = np.random.default_rng([seed, index, 2])
    big = image_size * 2
    image = _background(rng, item.background, big)
    base = np.asarray(COLORS[item.color], dtype=np.float64)
    fill = tuple(int(v) for v in np.clip(base + rng.normal(0, 12, 3), 0, 255))
    cx, cy = POSITIONS[item.position]
    jitter = rng.uniform(-0.05, 0.05, 2)
    radius = SIZES[item.size] * big / 2 * rng.uniform(0.9, 1.1)
    center = ((cx + jitter[0]) * big, (cy + jitter[1]) * big)
    _draw_shape(
        ImageDraw.Draw(image), item.shape, center, radius, float(rng.uniform(-15, 15)), fill
    )
    return image.resize((image_size, image_size), Image.Resampling.LANCZOS)


def _background(rng: np.random.Generator, kind: str, size: int) -> Image.Image:
    """A low-saturation gradient with noise: light (value 170-245) or dark (15-90)."""
    low, high = (170, 245) if kind == "light" else (15, 90)
    corners = rng.uniform(low, high, (2, 2, 3)) * rng.uniform(0.85, 1.0, 3)  # slight tint
    ys, xs = np.linspace(0, 1, size)[:, None, None], np.linspace(0, 1, size)[None, :, None]
    top = corners[0, 0] * (1 - xs) + corners[0, 1] * xs
    bottom = corners[1, 0] * (1 - xs) + corners[1, 1] * xs
    pixels = top * (1 - ys) + bottom * ys + rng.normal(0, 6, (size, size, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    return image.filter(ImageFilter.GaussianBlur(1))


def _draw_shape(
    draw: ImageDraw.ImageDraw,
    shape: str,
    center: tuple[float, float],
    radius: float,
    angle: float,
    fill: tuple[int, ...],
) -> None:
    x, y = center
    if shape == "circle":
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=fill)
        return
    if shape == "square":
        points = _polygon(x, y, radius * 0.95, 4, angle + 45)
    elif shape == "triangle":
        points = _polygon(x, y + radius * 0.15, radius * 1.1, 3, angle - 90)
    elif shape == "star":
        outer = _polygon(x, y, radius * 1.05, 5, angle - 90)
        inner = _polygon(x, y, radius * 0.45, 5, angle - 90 + 36)
        points = [p for pair in zip(outer, inner, strict=False) for p in pair]
    else:  # cross: two bars of a third of the width, i.e. one arm and its three quarter turns
        t = radius / 3
        arm = [(-t, -radius), (t, -radius), (t, -t)]
        arms: list[tuple[float, float]] = []
        for _ in range(4):
            arms += arm
            arm = [(-py, px) for px, py in arm]
        a = math.radians(angle)
        points = [
            (x + px * math.cos(a) - py * math.sin(a), y + px * math.sin(a) + py * math.cos(a))
            for px, py in arms
        ]
    draw.polygon(points, fill=fill)


def _polygon(x: float, y: float, r: float, k: int, start_deg: float) -> list[tuple[float, float]]:
    angles = [math.radians(start_deg + 360 * i / k) for i in range(k)]
    return [(x + r * math.cos(a), y + r * math.sin(a)) for a in angles]


def make_shapes_corpus(
    out: str | Path,
    n: int = 2000,
    *,
    seed: int = 0,
    image_size: int = 64,
    progress: Progress | None = None,
) -> ShapesCorpus:
    """Write ``n`` captioned shape images to ``out`` (see the module docstring for the layout).

    The corpus is built in a temporary folder beside ``out`` and renamed into place,
    so ``out`` is either absent or complete. ``out`` must not exist or be empty.

    Example:
        >>> corpus = make_shapes_corpus("shapes", n=100, seed=0)   # doctest: +SKIP
        >>> corpus.pairs.name                                        # doctest: +SKIP
        'pairs.csv'
    """
    if n < 1:
        raise InputError(f"-n must be at least 1, got {n}")
    if image_size < 16:
        raise InputError(f"--image-size must be at least 16 pixels, got {image_size}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} already exists and is not an empty folder; choose another --out")
    with staged_dir(out) as staged:
        _write_corpus(staged, n, seed, image_size, progress or NullProgress())
        publish_dir(staged, out)
    return ShapesCorpus(out, out / PAIRS_FILE, out / "images", n, seed)


def _write_corpus(root: Path, n: int, seed: int, image_size: int, progress: Progress) -> None:
    images = root / "images"
    images.mkdir()
    progress.start("Drawing shapes", n)
    # The whole folder is renamed into place at the end, so writing in place here is safe.
    with open(root / PAIRS_FILE, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for i in range(n):
            item = describe_item(seed, i)
            name = f"{i:05d}"
            render_item(item, seed, i, image_size).save(images / f"{name}.png")
            (images / f"{name}.txt").write_text(item.caption + "\n")
            fields = asdict(item)
            writer.writerow([f"images/{name}.png", item.caption] + [fields[c] for c in COLUMNS[2:]])
            progress.advance()
    progress.stop()
    write_json_atomic(
        root / CORPUS_FILE, {"kind": "shapes", "n": n, "seed": seed, "image_size": image_size}
    )
