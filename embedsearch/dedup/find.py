"""``find_duplicates``: exact and near duplicates of an embedding or index dir, or leaks across two.

Steps, one module each: read the inputs (:mod:`~embedsearch.dedup.inputs`), calibrate the
space and threshold (:mod:`~embedsearch.dedup.calibration`), find pairs and groups with the
chosen method (:mod:`~embedsearch.dedup.knn` or :mod:`~embedsearch.dedup.semdedup`), write
the result dir (:mod:`~embedsearch.dedup.outputs`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from embedsearch.atomic import publish_dir, staged_dir
from embedsearch.dedup.calibration import Calibration, calibrate
from embedsearch.dedup.grouping import Duplicates
from embedsearch.dedup.inputs import DedupInputs, open_inputs
from embedsearch.dedup.knn import knn_duplicates
from embedsearch.dedup.options import (
    DEFAULT_K,
    DEFAULT_NPROBE,
    DedupOptions,
    Keep,
    Method,
    check_options,
)
from embedsearch.dedup.outputs import DedupResult, check_out, write_result
from embedsearch.dedup.semdedup import semdedup_duplicates
from embedsearch.progress import NullProgress, Progress

MethodFunction = Callable[[DedupInputs, DedupOptions, Calibration, Progress], Duplicates]
METHODS: dict[str, MethodFunction] = {"knn": knn_duplicates, "semdedup": semdedup_duplicates}


def find_duplicates(
    path: str | Path,
    *,
    out: str | Path,
    threshold: float | None = None,
    against: str | Path | None = None,
    keep: Keep = "first",
    method: Method = "knn",
    clusters: int | None = None,
    eps: float | None = None,
    k: int = DEFAULT_K,
    nprobe: int = DEFAULT_NPROBE,
    block_rows: int = 16_384,
    whiten: bool | None = None,
    local_scaling: bool | None = None,
    phash: int | None = None,
    progress: Progress | None = None,
) -> DedupResult:
    """Find exact and near duplicates in ``path`` (embedding or index dir); write them to ``out``.

    ``threshold``: cosine similarity at or above which two items are near duplicates
    (default: chosen from the data, see :mod:`embedsearch.dedup.threshold`); a cosine of the
    whitened vectors when they are whitened.
    ``whiten``: PCA-whiten the vectors (fit on a sample of the inputs) before searching;
    None (default) whitens when that lets more of the corpus's own strong self-copies pass the
    default threshold, as :mod:`embedsearch.dedup.whitening` explains. ``method="knn"`` only.
    ``local_scaling``: compare each pair's score less the two items' neighbourhood levels
    (:mod:`embedsearch.dedup.local_scaling`); None (default) decides as for whitening when the
    threshold is calibrated, and leaves it off with a given ``threshold`` (which then stays a
    cosine). ``method="knn"`` only.
    ``phash``: also pair images (of an image embedding dir) whose perceptual hashes differ in at
    most this many of 64 bits (:mod:`embedsearch.dedup.phash`); None (default) skips it.
    ``against``: another embedding/index dir; only pairs across the two are reported
    and ``remove.txt`` lists the rows of ``path`` that leak from it.
    ``keep``: ``first``, ``largest`` or ``centroid`` survivor of each group.
    ``method``: ``knn`` (default) or ``semdedup`` (k-means ``clusters``, prune within
    each cluster at similarity >= ``1 - eps``).

    Example:
        >>> r = find_duplicates("emb/", out="dups/")          # doctest: +SKIP
        >>> r.groups, r.to_remove, (r.out / "remove.txt").exists()   # doctest: +SKIP
        (12, 15, True)
    """
    started = time.perf_counter()
    options = DedupOptions(
        method=method,
        threshold=threshold,
        whiten=whiten,
        keep=keep,
        k=k,
        nprobe=nprobe,
        clusters=clusters,
        eps=eps,
        block_rows=block_rows,
        phash=phash,
        local=local_scaling,
    )
    check_options(options, against is not None)
    inputs = open_inputs(path, against)
    out = Path(out)
    check_out(out)
    progress = progress or NullProgress()
    with staged_dir(out) as staged:
        calibration = calibrate(inputs, options, progress)
        found = METHODS[method](inputs, options, calibration, progress)
        result = write_result(staged, out, inputs, options, calibration, found, started)
        publish_dir(staged, out)
    result.against = Path(against) if against is not None else None
    return result
