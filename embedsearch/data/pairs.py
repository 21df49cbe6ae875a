"""Image-caption PAIRS for CLIP training: a table or an image folder with same-name captions.

Accepted inputs:

- a CSV/TSV (separator detected), JSONL or Parquet table with an image-path column and a
  caption column. Defaults: the first of ``filepath|image|path`` and of ``caption|text|title``
  that exists; relative paths are resolved against the table's folder.
- a folder of images where ``cat.jpg`` is captioned by ``cat.txt`` beside it.
- WebDataset tar shards (``data/{00000..00099}.tar``): each sample's image and ``.txt``
  caption, read by offset from the shard (:mod:`embedsearch.data.webdataset`).

Bad rows never crash loading (open_clip's CSV loader raises ``KeyError: 'filepath'``):
a missing column is an :class:`~embedsearch.errors.InputError` that lists the columns
present, and rows with an empty caption, a missing image or an unreadable image are
counted in a :class:`PairsReport` and skipped. Only paths and captions are kept in
memory (as open_clip and webdataset index files do), never pixels.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from embedsearch.data.webdataset import TarMember, is_webdataset
from embedsearch.errors import InputError
from embedsearch.progress import NullProgress, Progress

IMAGE_COLUMNS = ("filepath", "image", "path")
TEXT_COLUMNS = ("caption", "text", "title")
_MAX_EXAMPLES = 5


@dataclass
class PairsReport:
    """What loading PAIRS found: rows read, pairs kept, and skipped rows by reason.

    ``skipped`` maps a reason (``empty caption``, ``missing image``, ``broken image``,
    ``no caption file``) to its count; ``examples`` holds the first few bad rows.
    """

    rows: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def skip(self, reason: str, where: str) -> None:
        """Count one bad row."""
        self.skipped[reason] += 1
        if len(self.examples) < _MAX_EXAMPLES:
            self.examples.append(f"{where}: {reason}")

    def summary(self) -> str:
        """One line, e.g. ``98 of 100 pairs used; skipped: 1 empty caption, 1 missing image``."""
        text = f"{self.kept:,} of {self.rows:,} pairs used"
        if self.skipped:
            text += "; skipped: " + ", ".join(f"{n:,} {r}" for r, n in sorted(self.skipped.items()))
        return text


@dataclass
class Pairs:
    """Loaded pairs: absolute image paths (or shard members) and captions, and the report."""

    images: list[str | TarMember]
    captions: list[str]
    report: PairsReport
    description: str

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, indices: list[int]) -> Pairs:
        """The pairs at ``indices`` (the report is shared)."""
        return Pairs(
            [self.images[i] for i in indices],
            [self.captions[i] for i in indices],
            self.report,
            self.description,
        )


def load_pairs(
    path: str | Path,
    image_col: str | None = None,
    text_col: str | None = None,
    *,
    check_images: bool = True,
    progress: Progress | None = None,
) -> Pairs:
    """Read PAIRS from a table or a captioned image folder (see the module docstring).

    ``check_images`` opens each image's header so unreadable files are reported now
    rather than skipped during training. Raises InputError when nothing usable is left.

    Example:
        >>> pairs = load_pairs("shapes/pairs.csv")   # doctest: +SKIP
        >>> pairs.report.summary()                   # doctest: +SKIP
        '2,000 of 2,000 pairs used'
    """
    progress = progress or NullProgress()
    path = Path(path).expanduser()
    if is_webdataset(path):
        if image_col or text_col:
            raise InputError("--image-col/--text-col apply to tables, not to tar shards")
        pairs = _load_webdataset(str(path), progress)
    elif not path.exists():
        raise InputError(f"PAIRS {path} does not exist")
    elif path.is_dir():
        if image_col or text_col:
            raise InputError("--image-col/--text-col apply to tables, not to an image folder")
        pairs = _load_folder(path.resolve(), check_images, progress)
    else:
        pairs = _load_table(path.resolve(), image_col, text_col, check_images, progress)
    pairs.report.kept = len(pairs.images)
    if not pairs.images:
        detail = "; ".join(pairs.report.examples) or "no rows"
        raise InputError(
            f"PAIRS {path}: no usable image-caption pairs ({pairs.report.summary()}; {detail})"
        )
    return pairs


def pick_columns(
    columns: list[str], image_col: str | None, text_col: str | None, where: str
) -> tuple[str, str]:
    """Resolve the image and caption columns, naming what is missing and what is present.

    Example:
        >>> pick_columns(["image", "title", "url"], None, None, "t.csv")
        ('image', 'title')
    """
    present = ", ".join(columns) or "none"
    chosen = []
    for asked, defaults, option in (
        (image_col, IMAGE_COLUMNS, "--image-col"),
        (text_col, TEXT_COLUMNS, "--text-col"),
    ):
        if asked:
            if asked not in columns:
                raise InputError(
                    f"table {where} has no column {asked!r} ({option}); columns present: {present}"
                )
            chosen.append(asked)
            continue
        found = next((c for c in defaults if c in columns), None)
        if found is None:
            raise InputError(
                f"table {where} has none of the {option} defaults {'|'.join(defaults)}; "
                f"columns present: {present}; pass {option} NAME"
            )
        chosen.append(found)
    return chosen[0], chosen[1]


def _load_table(
    path: Path, image_col: str | None, text_col: str | None, check_images: bool, progress: Progress
) -> Pairs:
    from embedsearch.data.tables import read_table_batches

    pairs = Pairs([], [], PairsReport(), "")
    report = pairs.report
    columns: tuple[str, str] | None = None
    progress.start(f"Reading pairs from {path.name}", None)
    for block in read_table_batches(path):
        batch = block.batch
        if columns is None:
            columns = pick_columns(list(batch.schema.names), image_col, text_col, str(path))
        paths = batch.column(columns[0]).to_pylist()
        texts = batch.column(columns[1]).to_pylist()
        for row, (value, caption) in enumerate(zip(paths, texts, strict=True)):
            report.rows += 1
            where = f"{path.name} row {report.rows}"
            if row in block.errors:
                report.skip("not UTF-8 text", f"{where} ({block.errors[row]})")
                continue
            image = _image_path(value, path.parent)
            if _keep(image, caption, where, check_images, report):
                pairs.images.append(str(image))
                pairs.captions.append(str(caption).strip())
        progress.advance(batch.num_rows)
    progress.stop()
    if columns is None:  # an empty table still deserves a column check
        from embedsearch.data.tables import table_columns

        pick_columns(table_columns(path), image_col, text_col, str(path))
    image_col, text_col = columns or (image_col, text_col)
    pairs.description = f"{path} [{image_col}, {text_col}]"
    return pairs


def _image_path(value: object, base: Path) -> Path | None:
    if value is None or isinstance(value, (bytes, bytearray)) or not str(value).strip():
        return None
    image = Path(str(value).strip()).expanduser()
    return image if image.is_absolute() else base / image


def _load_folder(root: Path, check_images: bool, progress: Progress) -> Pairs:
    from embedsearch.data.sources import display_path, walk_image_folder

    pairs = Pairs([], [], PairsReport(), str(root))
    report = pairs.report
    progress.start(f"Reading pairs from {root.name}/", None)
    for entry in walk_image_folder(root):
        report.rows += 1
        image = Path(entry.path)
        where = display_path(os.path.relpath(entry.path, root))
        if entry.error is not None:
            report.skip(entry.error, where)
            continue
        caption_file = image.with_suffix(".txt")
        try:
            caption = caption_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            report.skip("no caption file", where)
            continue
        except (OSError, UnicodeDecodeError) as e:
            report.skip("unreadable caption file", f"{where} ({e})")
            continue
        if _keep(image, caption, where, check_images, report):
            pairs.images.append(str(image))
            pairs.captions.append(caption.strip())
        progress.advance()
    progress.stop()
    return pairs


def _load_webdataset(spec: str, progress: Progress) -> Pairs:
    from embedsearch.data.webdataset import expand_shards, iter_samples, read_text

    pairs = Pairs([], [], PairsReport(), os.path.abspath(spec))
    report = pairs.report
    shards = expand_shards(spec)
    compressed = [s for s in shards if not s.name.lower().endswith(".tar")]
    if compressed:
        # Training reads images at random; a compressed shard has no offsets to read them by.
        raise InputError(
            f"shard {compressed[0]} is compressed: training reads samples at random, so "
            "decompress the shards first (gunzip), as img2dataset writes them"
        )
    progress.start(f"Reading pairs from {len(shards):,} shards", len(shards))
    for shard in shards:
        for sample in iter_samples(shard):
            report.rows += 1
            image, caption = sample.image(), sample.members.get("txt")
            if image is None:
                report.skip("no image member", sample.source)
                continue
            if caption is None:
                report.skip("no caption (.txt)", sample.source)
                continue
            try:
                text = read_text(caption)
            except InputError as e:
                report.skip("unreadable caption", f"{sample.source} ({e})")
                continue
            if not text.strip():
                report.skip("empty caption", sample.source)
                continue
            pairs.images.append(image)
            pairs.captions.append(text.strip())
        progress.advance()
    progress.stop()
    return pairs


def _keep(
    image: Path | None, caption: object, where: str, check_images: bool, report: PairsReport
) -> bool:
    """Check one pair; count it in ``report`` under its reason when it is unusable."""
    if caption is None or not str(caption).strip():
        report.skip("empty caption", where)
        return False
    if image is None:
        report.skip("empty image path", where)
        return False
    if not image.is_file():
        report.skip("missing image", f"{where} ({image})")
        return False
    if check_images and not _readable_image(image):
        report.skip("broken image", f"{where} ({image})")
        return False
    return True


def _readable_image(path: Path) -> bool:
    """Cheap check: PIL recognises the header (full decoding happens when training)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.size  # noqa: B018 - parsing the header is the check
        return True
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return False


def split_indices(
    n: int, val_fraction: float, seed: int, keys: list[str]
) -> tuple[list[int], list[int]]:
    """Deterministic train/val split: rank items by a seeded hash of their key; the first are val.

    The same key set always gives the same split, so a held-out set stays held out
    across ``--resume`` and across reruns, whatever the row order.

    Example:
        >>> train, val = split_indices(10, 0.2, 0, [str(i) for i in range(10)])
        >>> len(train), len(val)
        (8, 2)
    """
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    n_val = round(n * val_fraction)
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    ranked = sorted(
        range(n),
        key=lambda i: hashlib.blake2b(f"{seed}:{keys[i]}".encode(), digest_size=8).digest(),
    )
    val = sorted(ranked[:n_val])
    val_set = set(val)
    return [i for i in range(n) if i not in val_set], val
