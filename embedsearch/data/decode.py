"""Robust image decoding: any common file in, an RGB PIL image out, or a reason why not.

Handles CMYK, 16-bit, palette, alpha (composited on white), grayscale, animated
GIFs (first frame) and EXIF rotation; refuses truncated, empty, non-image and
decompression-bomb files with a :class:`DecodeError` whose message is the reason
written to ``errors.parquet``.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from embedsearch.errors import InputError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
# Larger images are refused as decompression bombs (PIL's own default is 89M, warning only).
MAX_IMAGE_PIXELS = 100_000_000
# Larger files are refused unread: 4 bytes a pixel (uncompressed 8-bit RGBA) at the pixel
# limit. A 3 GB junk ".jpg" used to be read whole before PIL said "not an image".
MAX_IMAGE_BYTES = 4 * MAX_IMAGE_PIXELS


class DecodeError(InputError):
    """An input image that cannot be turned into pixels; the message is the reason."""


def is_image_file(path: str | Path) -> bool:
    """True for the extensions ``embed`` reads from folders (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def decode_image(data: bytes, draft_size: int | None = None) -> Image.Image:
    """Bytes of an image file -> RGB PIL image; :class:`DecodeError` with a reason otherwise.

    ``draft_size`` lets JPEG decoding skip detail finer than needed for that output size: for
    thumbnails and training crops only. Pixels fed to a model for embedding are decoded in full,
    since a draft-decoded JPEG differs from open_clip's preprocessing by up to 0.057 mean |delta|
    (issue 12, ``benchmarks/RESULTS.md``).

    Example:
        >>> import io
        >>> from PIL import Image
        >>> buffer = io.BytesIO()
        >>> Image.new("L", (8, 8)).save(buffer, "PNG")   # a grey image ...
        >>> decode_image(buffer.getvalue()).mode         # ... comes back as RGB
        'RGB'
    """
    if not data:
        raise DecodeError("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise DecodeError(
                    f"image too large ({image.width}x{image.height} pixels; "
                    f"limit {MAX_IMAGE_PIXELS:,})"
                )
            if draft_size and image.format == "JPEG":
                # Decode at the smallest DCT scale that still covers 2x the target size.
                image.draft("RGB", (draft_size * 2, draft_size * 2))
            image.load()
    except DecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DecodeError(f"decompression bomb refused: {e}") from e
    except UnidentifiedImageError as e:
        raise DecodeError("not an image (unrecognised format)") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise DecodeError(f"corrupt or truncated image: {e}") from e
    try:
        return to_rgb(image)
    except (OSError, ValueError) as e:
        raise DecodeError(f"cannot convert image mode {image.mode}: {e}") from e


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB: alpha composited on white, 16-bit scaled, EXIF rotation applied."""
    image = ImageOps.exif_transpose(image) or image
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit / 32-bit grayscale: scale the actual range to 8 bits instead of clipping.
        array = np.asarray(image, dtype=np.float32)
        low, high = float(array.min()), float(array.max())
        scaled = (array - low) / (high - low) * 255.0 if high > low else np.zeros_like(array)
        return Image.fromarray(scaled.astype(np.uint8), "L").convert("RGB")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def file_kind(mode: int) -> str:
    """A word for what a ``st_mode`` is, for messages: ``FIFO``, ``socket``, ``device``…"""
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISDIR(mode):
        return "directory"
    return "special file"


def read_image_bytes(path: str | Path, limit: int = MAX_IMAGE_BYTES) -> bytes:
    """The bytes of an image file, refusing what is not a regular file or is over ``limit``.

    A FIFO or device is never opened for a blocking read (a FIFO named ``x.jpg`` used to
    hang ``embed`` forever), and the size is checked before anything is read.

    Example:
        >>> read_image_bytes("/dev/null")
        Traceback (most recent call last):
        ...
        embedsearch.data.decode.DecodeError: not a regular file (device)
    """
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise DecodeError(f"not a regular file ({file_kind(mode)})")
        # O_NONBLOCK: if it was swapped for a FIFO since the stat, opening does not wait.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise DecodeError(f"not a regular file ({file_kind(info.st_mode)})")
            if info.st_size > limit:
                raise DecodeError(f"file too large ({info.st_size:,} bytes; limit {limit:,})")
            data = f.read(limit + 1)
    except OSError as e:
        raise DecodeError(f"cannot read file: {e.strerror or e}") from e
    if len(data) > limit:
        raise DecodeError(f"file too large (over {limit:,} bytes)")
    return data


def load_image(path: str | Path, draft_size: int | None = None) -> Image.Image:
    """Read and decode an image file (see :func:`decode_image`); missing files raise too.

    Example:
        >>> load_image("photos/cat.jpg").size   # doctest: +SKIP
        (640, 480)
    """
    try:
        data = read_image_bytes(path)
    except DecodeError as e:
        raise DecodeError(f"{path}: {e}") from e
    return decode_image(data, draft_size)
