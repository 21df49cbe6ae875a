"""Shared fixtures: generated image folders, and running the CLI in-process."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

# Tests must never reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def write_images(
    folder: Path, n: int, size: tuple[int, int] = (40, 48), seed: int = 0, fmt: str = "jpg"
) -> list[Path]:
    """Write ``n`` distinct random-pattern images to ``folder``; returns their paths."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        # Smooth colour blobs so JPEG keeps them distinct.
        base = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize(size, Image.Resampling.BICUBIC)
        path = folder / f"img_{i:04d}.{fmt}"
        image.save(path)
        paths.append(path)
    return paths


@pytest.fixture
def make_images() -> Callable[..., list[Path]]:
    """The :func:`write_images` helper, as a fixture (test modules cannot import conftest)."""
    return write_images


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """A folder with 12 small JPEGs (some in a sub-folder)."""
    root = tmp_path / "images"
    write_images(root, 8)
    write_images(root / "sub", 4, seed=1)
    return root


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture) -> Callable[..., CliResult]:
    """Run ``embedsearch ARGS`` in-process through the real entry point (and its error boundary)."""
    from embedsearch.cli.app import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def image_bytes(image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()
