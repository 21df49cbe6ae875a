"""A seeded copy-detection set cut from real photos: originals, transformed copies, train crops.

The photos are scikit-image's sample images (shipped inside the package, nothing is
downloaded). Each photo is split once along its longer side into a *train zone*
(the first 35 %) and a *corpus zone* (the rest), so pretraining crops never show
pixels of the search corpus. Corpus crops are square, at random positions and
scales (side ``size`` to ``2.5 * size`` source pixels), textured (flat sky or black
borders refused) and overlap any other corpus crop by at most 20 % of their area,
so two originals are never copies of each other (about 440 originals fit at 48 px,
more at smaller sizes; asking for more is an :class:`InputError`). Copies are made from the
original's *source* pixels, as a re-encoded, re-cropped version of a photo would be:

- ``mild``: a crop keeping >= 88 % of the area, brightness and contrast +-10 %, JPEG 40-80
- ``strong``: a crop keeping 60-85 % of the area, brightness and contrast +-30 %,
  horizontal flip half of the time, JPEG 25-60

Train, corpus and copies draw from independent seeded streams, so changing
``n_train`` leaves the corpus and its copies unchanged.
"""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance

from embedsearch.atomic import replacing
from embedsearch.errors import EmbedsearchError, InputError

# Photos of scikit-image's data dir (no download needed); textures and line art left out.
PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "motorcycle",
    "camera",
    "coins",
    "clock",
    "cell",
    "moon",
    "retina",
    "hubble_deep_field",
    "brick",
    "gravel",
)
TRAIN_ZONE = 0.35
MAX_SCALE = 2.5
MAX_OVERLAP = 0.2
MAX_MISSES = 5000
# Grey-level std below which a crop is flat (sky, black border): not a distinct original.
MIN_STD = 14.0
STRENGTHS: dict[str, dict[str, Any]] = {
    # area kept, aspect jitter, brightness/contrast range, JPEG quality range, flip probability
    "mild": {
        "area": (0.88, 1.0),
        "aspect": (0.9, 1.11),
        "light": 0.10,
        "quality": (40, 80),
        "flip": 0.0,
    },
    "strong": {
        "area": (0.60, 0.85),
        "aspect": (0.8, 1.25),
        "light": 0.30,
        "quality": (25, 60),
        "flip": 0.5,
    },
}


@dataclass
class CopySet:
    """Originals, their transformed copies and disjoint training crops (all RGB, ``size`` px).

    ``copy_of[i]`` is the index in ``corpus`` of the original that ``copies[i]`` was made from.
    """

    train: list[Image.Image]
    corpus: list[Image.Image]
    copies: list[Image.Image]
    copy_of: np.ndarray


@dataclass(frozen=True)
class _Box:
    photo: int
    left: int
    top: int
    side: int

    def overlap(self, other: _Box) -> int:
        if self.photo != other.photo:
            return 0
        w = min(self.left + self.side, other.left + other.side) - max(self.left, other.left)
        h = min(self.top + self.side, other.top + other.side) - max(self.top, other.top)
        return max(0, w) * max(0, h)


@functools.lru_cache(maxsize=1)
def load_photos() -> tuple[np.ndarray, ...]:
    """The sample photos as uint8 RGB arrays (grey ones replicated to 3 channels)."""
    try:
        import skimage.data
    except ImportError as e:
        raise EmbedsearchError(
            "the copy-detection set needs scikit-image: pip install scikit-image"
        ) from e
    photos = []
    for name in PHOTOS:
        array = (
            skimage.data.stereo_motorcycle()[0]
            if name == "motorcycle"
            else getattr(skimage.data, name)()
        )
        if array.ndim == 2:
            array = np.repeat(array[:, :, None], 3, axis=2)
        photos.append(np.ascontiguousarray(array[:, :, :3].astype(np.uint8)))
    return tuple(photos)


def _zone(shape: tuple[int, ...], train: bool) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a photo's train or corpus zone, split along the longer side."""
    h, w = shape[:2]
    if w >= h:
        cut = int(w * TRAIN_ZONE)
        return (0, 0, cut, h) if train else (cut, 0, w, h)
    cut = int(h * TRAIN_ZONE)
    return (0, 0, w, cut) if train else (0, cut, w, h)


def _random_box(
    rng: np.random.Generator, photos: tuple[np.ndarray, ...], size: int, train: bool
) -> _Box | None:
    """A random square box inside one photo's zone, or None when it does not fit."""
    photo = int(rng.integers(len(photos)))
    left, top, right, bottom = _zone(photos[photo].shape, train)
    # Log-uniform scale: as many small crops as large ones, which packs more distinct originals.
    side = int(np.rint(size * np.exp(rng.uniform(0.0, np.log(MAX_SCALE)))))
    if side > right - left or side > bottom - top:
        return None
    x = int(rng.integers(left, right - side + 1))
    y = int(rng.integers(top, bottom - side + 1))
    return _Box(photo, x, y, side)


def _pixels(photos: tuple[np.ndarray, ...], box: _Box) -> np.ndarray:
    return photos[box.photo][box.top : box.top + box.side, box.left : box.left + box.side]


def _textured(pixels: np.ndarray) -> bool:
    return float(pixels.mean(axis=2).std()) >= MIN_STD


def _sample_boxes(
    rng: np.random.Generator, photos: tuple[np.ndarray, ...], n: int, size: int, train: bool
) -> list[_Box]:
    """``n`` textured boxes; corpus boxes also overlap each other by at most MAX_OVERLAP."""
    boxes: list[_Box] = []
    by_photo: dict[int, list[_Box]] = {}
    misses = 0
    while len(boxes) < n:
        # After this many rejections in a row the zones are packed: more tries rarely succeed.
        if misses > MAX_MISSES:
            raise InputError(
                f"could only cut {len(boxes)} distinct {'train' if train else 'corpus'} crops "
                f"at size {size} from the sample photos (asked for {n}): "
                "use a smaller size or count"
            )
        box = _random_box(rng, photos, size, train)
        same_photo = by_photo.setdefault(box.photo, []) if box is not None else []
        if (
            box is None
            or (
                not train
                and any(
                    box.overlap(b) > MAX_OVERLAP * min(box.side, b.side) ** 2 for b in same_photo
                )
            )
            or not _textured(_pixels(photos, box))
        ):
            misses += 1
            continue
        misses = 0
        same_photo.append(box)
        boxes.append(box)
    return boxes


def _resize(pixels: np.ndarray, size: int) -> Image.Image:
    return Image.fromarray(pixels).resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)


def make_copy(
    source: np.ndarray, size: int, strength: str, rng: np.random.Generator
) -> Image.Image:
    """One transformed, JPEG-compressed copy of ``source`` (an original's source pixels).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> make_copy(np.zeros((64, 64, 3), np.uint8), 32, "mild", rng).size
        (32, 32)
    """
    recipe = STRENGTHS[strength]
    h, w = source.shape[:2]
    area = rng.uniform(*recipe["area"]) * h * w
    aspect = np.exp(rng.uniform(*np.log(recipe["aspect"])))
    cw = int(np.rint(min(w, np.sqrt(area * aspect))))
    ch = int(np.rint(min(h, area / cw)))
    x = int(rng.integers(0, w - cw + 1))
    y = int(rng.integers(0, h - ch + 1))
    image = _resize(np.ascontiguousarray(source[y : y + ch, x : x + cw]), size)
    if rng.uniform() < recipe["flip"]:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    light = recipe["light"]
    image = ImageEnhance.Brightness(image).enhance(1.0 + rng.uniform(-light, light))
    image = ImageEnhance.Contrast(image).enhance(1.0 + rng.uniform(-light, light))
    return reencode_jpeg(image, int(rng.integers(recipe["quality"][0], recipe["quality"][1] + 1)))


def reencode_jpeg(image: Image.Image, quality: int) -> Image.Image:
    """``image`` saved as a JPEG of ``quality`` and decoded again (its ``format`` is "JPEG")."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    decoded = Image.open(io.BytesIO(buffer.getvalue()))
    decoded.load()
    return decoded


def make_copy_set(
    n_train: int,
    n_corpus: int,
    strength: str = "strong",
    size: int = 48,
    seed: int = 0,
    copies_per_original: int = 1,
) -> CopySet:
    """Cut ``n_corpus`` originals, ``copies_per_original`` copies of each, and ``n_train`` crops.

    Copies are ordered original by original: copy ``i`` is of original ``i // copies_per_original``.

    Example:
        >>> s = make_copy_set(n_train=100, n_corpus=50, strength="mild", size=48, seed=0)
        >>> len(s.train), len(s.corpus), len(s.copies), s.copy_of[:3].tolist()
        (100, 50, 50, [0, 1, 2])
    """
    if strength not in STRENGTHS:
        raise InputError(f"unknown copy strength {strength!r}: use one of {', '.join(STRENGTHS)}")
    if n_train < 0 or n_corpus < 0 or copies_per_original < 0 or size < 8:
        raise InputError("counts must be >= 0 and size >= 8")
    photos = load_photos()
    train_seq, corpus_seq, copy_seq = np.random.SeedSequence(seed).spawn(3)
    train_boxes = _sample_boxes(np.random.default_rng(train_seq), photos, n_train, size, train=True)
    corpus_boxes = _sample_boxes(
        np.random.default_rng(corpus_seq), photos, n_corpus, size, train=False
    )
    copy_rng = np.random.default_rng(copy_seq)
    copies, copy_of = [], []
    for index, box in enumerate(corpus_boxes):
        for _ in range(copies_per_original):
            copies.append(make_copy(_pixels(photos, box), size, strength, copy_rng))
            copy_of.append(index)
    return CopySet(
        train=[_resize(_pixels(photos, b), size) for b in train_boxes],
        corpus=[_resize(_pixels(photos, b), size) for b in corpus_boxes],
        copies=copies,
        copy_of=np.asarray(copy_of, dtype=np.int64),
    )


def write_copy_set(copy_set: CopySet, out_dir: str | Path) -> Path:
    """Write ``train/*.png``, ``corpus/*.png``, ``copies/*.jpg`` and ``pairs.csv`` (copy,original).

    Copies keep their JPEG quantisation (``quality="keep"``), so writing does not compress twice.
    Paths in ``pairs.csv`` are relative to ``out_dir``.

    Example:
        >>> write_copy_set(make_copy_set(10, 20), "copyset/")   # doctest: +SKIP
        PosixPath('copyset')
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder")
    for name in ("train", "corpus", "copies"):
        (out / name).mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(copy_set.train):
        image.save(out / "train" / f"{i:06d}.png")
    for i, image in enumerate(copy_set.corpus):
        image.save(out / "corpus" / f"{i:06d}.png")
    for i, image in enumerate(copy_set.copies):
        keep = getattr(image, "format", None) == "JPEG"
        image.save(out / "copies" / f"{i:06d}.jpg", quality="keep" if keep else 95)
    with replacing(out / "pairs.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["copy", "original"])
        for i, original in enumerate(copy_set.copy_of.tolist()):
            writer.writerow([f"copies/{i:06d}.jpg", f"corpus/{original:06d}.png"])
    return out
