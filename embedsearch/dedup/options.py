"""The choices of a dedup run, as types the CLI lists in ``--help`` (kept free of numpy, so
``embedsearch dedup --help`` stays light), and the one check of how they combine.

Example:
    >>> check_options(DedupOptions(method="semdedup", eps=0.05), against=False)
    >>> check_options(DedupOptions(clusters=4), against=False)
    Traceback (most recent call last):
    ...
    embedsearch.errors.InputError: --clusters and --eps belong to --method semdedup
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from embedsearch.errors import InputError

Method = Literal["knn", "semdedup"]
Keep = Literal["first", "largest", "centroid"]  # which member of a group survives
DEFAULT_K = 10
# Near copies sit far closer to each other than to other rows, so they share one of a few cells
# (benchmarks/RESULTS.md, issue 6: nprobe 8 finds 99.96 % of the pairs nprobe 32 finds).
DEFAULT_NPROBE = 8
# Hamming distance (of 64 bits) at or below which two images' pHashes make them near-exact
# copies (dedup.phash). imagededup's default is 10; 6 keeps precision high, since this stage
# only adds pairs the model misses (benchmarks/RESULTS.md, issue 20).
DEFAULT_PHASH_DISTANCE = 6


@dataclass(frozen=True)
class DedupOptions:
    """How to look for duplicates; see :func:`embedsearch.dedup.find_duplicates`."""

    method: Method = "knn"
    threshold: float | None = None
    whiten: bool | None = None
    keep: Keep = "first"
    k: int = DEFAULT_K
    nprobe: int = DEFAULT_NPROBE
    clusters: int | None = None
    eps: float | None = None
    block_rows: int = 16_384
    phash: int | None = None  # also pair images whose pHashes differ in <= this many bits
    local: bool | None = None  # scores less neighbourhood levels (None: tested by calibration)


def check_options(options: DedupOptions, against: bool) -> None:
    """Refuse values out of range and options the chosen method would ignore."""
    o = options
    if o.method not in get_args(Method):
        raise InputError(f"unknown --method {o.method!r}: use {' or '.join(get_args(Method))}")
    if o.keep not in get_args(Keep):
        raise InputError(f"unknown --keep {o.keep!r}: use {', '.join(get_args(Keep))}")
    if o.threshold is not None and not -1.0 <= o.threshold <= 1.0:
        raise InputError(f"--threshold {o.threshold} is not a cosine similarity in [-1, 1]")
    if o.k < 1:
        raise InputError("-k must be at least 1")
    if o.phash is not None:
        if not 0 <= o.phash <= 64:
            raise InputError(f"--phash {o.phash} is not a Hamming distance of 64-bit hashes (0-64)")
        if against or o.method != "knn":
            raise InputError("--phash works with --method knn within one set (no --against)")
    if o.method == "knn":
        if o.clusters is not None or o.eps is not None:
            raise InputError("--clusters and --eps belong to --method semdedup")
        return
    if against:
        raise InputError("--against works with --method knn only (SemDeDup prunes within one set)")
    if o.threshold is not None:
        raise InputError(
            "--method semdedup takes --eps (prune at similarity >= 1 - eps), not --threshold"
        )
    if o.keep != "first":
        raise InputError(
            "--method semdedup always keeps the item farthest from its cluster centroid: "
            "drop --keep"
        )
    if o.clusters is not None and o.clusters < 1:
        raise InputError("--clusters must be at least 1")
    if o.eps is not None and not 0.0 <= o.eps <= 2.0:
        raise InputError(f"--eps {o.eps} must lie in [0, 2]")
    if o.whiten:
        raise InputError(
            "--whiten works with --method knn only (SemDeDup prunes by raw cosine to the "
            "cluster centroid)"
        )
    if o.local:
        raise InputError(
            "--local-scaling works with --method knn only (SemDeDup prunes by raw cosine to the "
            "cluster centroid)"
        )
