"""Helpers shared by the benchmark scripts: machine description, JPEG corpora, tables."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np


def machine() -> str:
    """One line naming the machine the figures come from."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{platform.processor() or platform.machine()}, {cores} cores, {gpu}, "
        f"torch {torch.__version__}, "
        f"torch threads {torch.get_num_threads()}, {time.strftime('%Y-%m-%d')}"
    )


def make_jpeg_folder(folder: Path, n: int, size: int = 256, seed: int = 0) -> Path:
    """``n`` distinct smooth-noise JPEGs of ``size``² (reused when already there)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.jpg"))) == n:
        return folder
    rng = np.random.default_rng(seed)
    for i in range(n):
        base = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(base).resize((size, size), Image.Resampling.BICUBIC).save(
            folder / f"{i:06d}.jpg", quality=90
        )
    return folder


def print_table(headers: list[str], rows: list[list], flush: bool = False) -> None:
    """A plain fixed-width table on stdout (copied into RESULTS.md as is)."""
    cells = [[f"{c:,.2f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print(
            "| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=False)) + " |",
            flush=flush,
        )
