"""``find_duplicates``: exact and near duplicates of an embedding or index dir, or leaks across two.

Steps: one pass over ids/sources/hashes (the catalog); exact pairs by hash; a FAISS
index over the vectors (flat or IVF, :mod:`embedsearch.dedup.near`) queried block by
block for pairs at or above the threshold; non-chaining star groups
(:mod:`embedsearch.dedup.grouping`); outputs written atomically
(:mod:`embedsearch.dedup.outputs`). ``method="semdedup"`` swaps the search and the
grouping for SemDeDup's cluster-wise pruning (:mod:`embedsearch.dedup.semdedup`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedsearch.dedup import outputs
from embedsearch.dedup import threshold as thresholds
from embedsearch.dedup.exact import exact_pairs
from embedsearch.dedup.grouping import KEEP_RULES, Groups, choose_survivors, star_groups
from embedsearch.dedup.inputs import (
    Catalog,
    check_same_model,
    iter_vector_blocks,
    load_catalog,
    resolve_dirs,
)
from embedsearch.dedup.near import DEFAULT_K, DEFAULT_NPROBE, build_search_index, search_pairs
from embedsearch.dedup.report import histogram_text, write_histogram_png
from embedsearch.dedup.whitening import MIN_ROWS as WHITEN_MIN_ROWS
from embedsearch.dedup.whitening import Whitening, choose_whitening
from embedsearch.errors import InputError
from embedsearch.progress import NullProgress, Progress
from embedsearch.store.embedding_dir import EmbeddingDir

METHODS = ("knn", "semdedup")


@dataclass
class DedupResult:
    """What a dedup run found; the files are in ``out``."""

    out: Path
    method: str
    threshold: float
    threshold_rule: str
    rows: int
    pairs: int
    exact_pairs: int
    groups: int
    to_remove: int
    kept: int
    seconds: float
    search: str = ""
    space: str = "raw cosine"
    whitening: str = ""
    against: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Inputs:
    catalog: Catalog
    main_dirs: list[EmbeddingDir]
    other_dirs: list[EmbeddingDir]
    main_rows: int
    whitening: Whitening | None = None  # applied to every block and sample once set

    @property
    def dim(self) -> int:
        """Width of the vectors the blocks yield (the whitened width once whitening is set)."""
        return self.whitening.dims if self.whitening is not None else self.catalog.dim

    def blocks(self, which: str, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """Vector blocks with catalog row numbers: ``main``, ``other`` or ``all`` rows."""
        dirs = {
            "main": self.main_dirs,
            "other": self.other_dirs,
            "all": self.main_dirs + self.other_dirs,
        }[which]
        offset = self.main_rows if which == "other" else 0
        for first, vectors in iter_vector_blocks(dirs, block_rows):
            yield (
                first + offset,
                (self.whitening(vectors) if self.whitening is not None else vectors),
            )

    def sample(self, which: str, m: int, block_rows: int, seed: int = 0) -> np.ndarray:
        """About ``m`` vectors drawn uniformly from ``which`` rows in one streaming pass."""
        total = (
            self.main_rows
            if which == "main"
            else len(self.catalog) - (self.main_rows if which == "other" else 0)
        )
        rng = np.random.default_rng(seed)
        p = min(1.0, m / max(total, 1))
        parts = [v[rng.random(len(v)) < p] for _, v in self.blocks(which, block_rows)]
        return np.ascontiguousarray(np.concatenate(parts)[:m])


def _open_inputs(path: str | Path, against: str | Path | None) -> _Inputs:
    main_dirs = resolve_dirs(path)
    other_dirs = resolve_dirs(against) if against is not None else []
    main_paths = {d.path.resolve() for d in main_dirs}
    if any(d.path.resolve() in main_paths for d in other_dirs):
        raise InputError(
            f"--against {against} holds the same embedding dir as {path}: name another set"
        )
    check_same_model(main_dirs + other_dirs)
    catalog = load_catalog(main_dirs + other_dirs)
    main_rows = int(np.count_nonzero(catalog.dir_numbers < len(main_dirs)))
    if against is not None and main_rows == len(catalog):
        raise InputError(f"--against {against} holds no embeddings")
    return _Inputs(catalog, main_dirs, other_dirs, main_rows)


def _self_copies(
    inputs: _Inputs, recipes: tuple[str, ...], seed: int = 0
) -> thresholds.SelfCopies | None:
    """Copies of ``CALIBRATION_IMAGES`` random images of the main set, embedded with its model (or None)."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(
        inputs.main_rows, min(thresholds.CALIBRATION_IMAGES, inputs.main_rows), replace=False
    )
    sources = inputs.catalog.source_of(np.sort(rows)).to_pylist()
    return thresholds.self_copies(inputs.main_dirs[0], sources, seed=seed, recipes=recipes)


def space_and_threshold(
    inputs: _Inputs, threshold: float | None, whiten: bool | None, block_rows: int
) -> tuple[float, str, str]:
    """Decide whether to whiten (:mod:`embedsearch.dedup.whitening`) and, unless given, the threshold.

    Sets ``inputs.whitening``; returns ``(threshold, threshold rule, whitening decision)``.
    """
    n_total = len(inputs.catalog)
    drawn: list[np.ndarray] = []

    def raw_sample() -> np.ndarray:  # read once, and only when needed
        if not drawn:
            drawn.append(inputs.sample("all", thresholds.sample_rows(n_total), block_rows))
        return drawn[0]

    deciding = whiten is None and n_total >= WHITEN_MIN_ROWS
    copies = (
        _self_copies(inputs, ("mild", "strong") if deciding else ("mild",))
        if deciding or threshold is None
        else None
    )
    whitening, decision = choose_whitening(raw_sample, n_total, copies, whiten)
    if whiten and whitening is None:
        raise InputError(
            f"--whiten needs at least {WHITEN_MIN_ROWS} rows to fit on; this input has {n_total}"
        )
    inputs.whitening = whitening
    if threshold is not None:
        return threshold, "given", decision
    raw = raw_sample()
    sample = whitening(raw) if whitening is not None else raw
    mild = copies.scores("mild", whitening) if copies is not None else None
    threshold, rule = thresholds.default_threshold(
        sample, n_total, mild, whitened=whitening is not None
    )
    return threshold, rule, decision


def _sizes(catalog: Catalog) -> Any:
    """``largest``: image file sizes on disk (0 when gone), text lengths for text corpora."""
    text = catalog.dirs[0].modality == "text"

    def sizes(rows: np.ndarray) -> np.ndarray:
        values = catalog.source_of(rows).to_pylist()
        if text:
            return np.array([len(v or "") for v in values], dtype=np.int64)
        return np.array(
            [os.path.getsize(v) if v and os.path.isfile(v) else 0 for v in values], dtype=np.int64
        )

    return sizes


def find_duplicates(
    path: str | Path,
    *,
    out: str | Path,
    threshold: float | None = None,
    against: str | Path | None = None,
    keep: str = "first",
    method: str = "knn",
    clusters: int | None = None,
    eps: float | None = None,
    k: int = DEFAULT_K,
    nprobe: int = DEFAULT_NPROBE,
    block_rows: int = 16_384,
    whiten: bool | None = None,
    progress: Progress | None = None,
) -> DedupResult:
    """Find exact and near duplicates in ``path`` (embedding or index dir) and write them to ``out``.

    ``threshold``: cosine similarity at or above which two items are near duplicates
    (default: chosen from the data, see :mod:`embedsearch.dedup.threshold`); a cosine of the
    whitened vectors when they are whitened.
    ``whiten``: PCA-whiten the vectors (fit on a sample of the inputs) before searching;
    None (default) whitens when that lets more of the corpus's own strong self-copies pass the
    default threshold, as :mod:`embedsearch.dedup.whitening` explains. ``method="knn"`` only.
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
    _check_arguments(threshold, keep, method, clusters, eps, against, k)
    if method == "semdedup" and whiten:
        raise InputError(
            "--whiten works with --method knn only (SemDeDup prunes by raw cosine to the cluster centroid)"
        )
    progress = progress or NullProgress()
    inputs = _open_inputs(path, against)
    out = Path(out)
    staging = outputs.prepare_out(out)
    try:
        if method == "semdedup":
            from embedsearch.dedup.semdedup import semdedup

            found = semdedup(
                inputs, clusters=clusters, eps=eps, block_rows=block_rows, progress=progress
            )
        else:
            found = _knn(inputs, threshold, k, nprobe, block_rows, whiten, progress)
        if method == "knn" and keep != "first" and against is None:
            found.groups.keep = _survivors(found, inputs, keep)
        found.vectors = (
            None  # its closure holds the search index (the vectors): free it before writing
        )
        result = _write(staging, out, inputs, found, method, keep, started)
        result.against = Path(against) if against is not None else None
    except BaseException:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
        raise
    return result


def _check_arguments(
    threshold: float | None,
    keep: str,
    method: str,
    clusters: int | None,
    eps: float | None,
    against: Any,
    k: int,
) -> None:
    if method not in METHODS:
        raise InputError(f"unknown --method {method!r}: use {' or '.join(METHODS)}")
    if keep not in KEEP_RULES:
        raise InputError(f"unknown --keep {keep!r}: use {', '.join(KEEP_RULES)}")
    if threshold is not None and not -1.0 <= threshold <= 1.0:
        raise InputError(f"--threshold {threshold} is not a cosine similarity in [-1, 1]")
    if k < 1:
        raise InputError("-k must be at least 1")
    if method == "semdedup":
        if against is not None:
            raise InputError(
                "--against works with --method knn only (SemDeDup prunes within one set)"
            )
        if threshold is not None:
            raise InputError(
                "--method semdedup takes --eps (prune at similarity >= 1 - eps), not --threshold"
            )
        if keep != "first":
            raise InputError(
                "--method semdedup always keeps the item farthest from its cluster centroid: drop --keep"
            )
        if clusters is not None and clusters < 1:
            raise InputError("--clusters must be at least 1")
        if eps is not None and not 0.0 <= eps <= 2.0:
            raise InputError(f"--eps {eps} must lie in [0, 2]")
    elif clusters is not None or eps is not None:
        raise InputError("--clusters and --eps belong to --method semdedup")


@dataclass
class Found:
    """Pairs (row numbers), groups, nearest-neighbour scores and how they were found."""

    a: np.ndarray
    b: np.ndarray
    score: np.ndarray
    exact: np.ndarray
    groups: Groups
    best: np.ndarray
    threshold: float
    rule: str
    search: str
    vectors: Any = None  # rows -> vectors, for keep=centroid
    space: str = "raw cosine"  # what the scores are: cosines of raw or whitened vectors
    whitening: str = ""  # why (the decision of embedsearch.dedup.whitening.choose_whitening)


def _knn(
    inputs: _Inputs,
    threshold: float | None,
    k: int,
    nprobe: int,
    block_rows: int,
    whiten: bool | None,
    progress: Progress,
) -> Found:
    catalog, against = inputs.catalog, bool(inputs.other_dirs)
    indexed = "other" if against else "all"
    n_indexed = len(catalog) - inputs.main_rows if against else len(catalog)
    threshold, rule, decision = space_and_threshold(inputs, threshold, whiten, block_rows)
    index = build_search_index(
        inputs.dim,
        n_indexed,
        lambda: inputs.blocks(indexed, block_rows),
        lambda m: inputs.sample(indexed, m, block_rows),
        nprobe=nprobe,
        progress=progress,
    )
    offset = inputs.main_rows if against else 0
    queries = inputs.blocks("main" if against else "all", block_rows)
    near = search_pairs(
        index,
        queries,
        threshold,
        k,
        same_set=not against,
        total=inputs.main_rows,
        progress=progress,
    )
    near_b = near.rows_b + offset
    ea, eb = exact_pairs(
        catalog.hashes, np.arange(len(catalog)) < inputs.main_rows if against else None
    )
    a, b, score, exact = _merge(ea, eb, near.rows_a, near_b, near.scores)
    groups = _against_groups(a, b) if against else _star(a, b)
    search = (
        f"IVF{index.nlist},Flat nprobe={index.nprobe}"
        if hasattr(index, "nlist")
        else "exact (flat)"
    )

    def vectors(rows: np.ndarray) -> np.ndarray:
        if hasattr(index, "make_direct_map"):
            index.make_direct_map()
        return index.reconstruct_batch(np.asarray(rows - offset, dtype=np.int64))

    space = inputs.whitening.describe() if inputs.whitening is not None else "raw cosine"
    return Found(
        a,
        b,
        score,
        exact,
        groups,
        near.best,
        float(threshold),
        rule,
        search,
        vectors,
        space,
        decision,
    )


def _merge(
    ea: np.ndarray, eb: np.ndarray, na: np.ndarray, nb: np.ndarray, ns: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Union of exact pairs (score 1, ``exact``) and near pairs; a pair found both ways is exact."""
    a = np.concatenate([ea, na]).astype(np.int64)
    b = np.concatenate([eb, nb]).astype(np.int64)
    score = np.concatenate([np.ones(len(ea), np.float32), ns.astype(np.float32)])
    exact = np.concatenate([np.ones(len(ea), bool), np.zeros(len(na), bool)])
    order = np.lexsort((~exact, b, a))
    a, b, score, exact = a[order], b[order], score[order], exact[order]
    first = np.ones(len(a), dtype=bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return a[first], b[first], score[first], exact[first]


def _star(a: np.ndarray, b: np.ndarray) -> Groups:
    rows, group = star_groups(a, b)
    return Groups(rows, group, choose_survivors(rows, group, "first"))


def _against_groups(a: np.ndarray, b: np.ndarray) -> Groups:
    """One group per leaking row of the main set: it (removed) and its matches in the other set (kept)."""
    mains, group = np.unique(a, return_inverse=True)
    rows = np.concatenate([mains, b])
    groups = np.concatenate([np.arange(len(mains)), group])
    keep = np.concatenate([np.zeros(len(mains), bool), np.ones(len(b), bool)])
    return Groups(rows, groups.astype(np.int64), keep)


def _survivors(found: Found, inputs: _Inputs, keep: str) -> np.ndarray:
    groups = found.groups
    return choose_survivors(
        groups.rows, groups.group, keep, sizes=_sizes(inputs.catalog), vectors=found.vectors
    )


def _write(
    staging: Path, out: Path, inputs: _Inputs, found: Found, method: str, keep: str, started: float
) -> DedupResult:
    catalog = inputs.catalog
    outputs.write_pairs(
        staging / "pairs.parquet", catalog, found.a, found.b, found.score, found.exact
    )
    outputs.write_groups(staging / "groups.parquet", catalog, found.groups)
    groups = found.groups
    removed = np.unique(groups.rows[~groups.keep]) if not inputs.other_dirs else np.unique(found.a)
    kept = outputs.write_lists(staging, catalog, removed, inputs.main_rows)
    (staging / "histogram.txt").write_text(
        histogram_text(found.best, found.threshold, found.rule, found.space)
    )
    write_histogram_png(
        found.best, found.threshold, found.rule, staging / "histogram.png", found.space
    )
    result = DedupResult(
        out=out,
        method=method,
        threshold=found.threshold,
        threshold_rule=found.rule,
        rows=len(catalog),
        pairs=len(found.a),
        exact_pairs=int(found.exact.sum()),
        groups=groups.count,
        to_remove=len(removed),
        kept=kept,
        seconds=0.0,
        search=found.search,
        space=found.space,
        whitening=found.whitening,
    )
    result.seconds = time.perf_counter() - started
    outputs.write_summary(
        staging,
        {
            "method": method,
            "keep": keep,
            "threshold": result.threshold,
            "threshold_rule": result.threshold_rule,
            "search": result.search,
            "scores": result.space,
            "whitening": result.whitening,
            "rows": result.rows,
            "main_rows": inputs.main_rows,
            "pairs": result.pairs,
            "exact_pairs": result.exact_pairs,
            "groups": result.groups,
            "to_remove": result.to_remove,
            "kept": kept,
            "seconds": round(result.seconds, 3),
            "inputs": [str(d.path) for d in inputs.main_dirs],
            "against": [str(d.path) for d in inputs.other_dirs],
            "model": catalog.dirs[0].model,
            "fingerprint": catalog.dirs[0].fingerprint,
        },
    )
    outputs.publish(staging, out)
    return result
