"""Which faiss index to build: pure functions of (rows, dim, memory budget) -> a factory string.

Kinds (``--kind``):

- ``flat``: exact search (``IDMap2,Flat``); recall 1.0, memory ``4·d`` bytes a vector
- ``hnsw``: graph search (``IDMap2,HNSW32,Flat``); fast queries, slow to build on few cores
- ``ivf``: inverted lists of full vectors (``IVFn,Flat``)
- ``ivfpq``: inverted lists of fast-scan PQ codes whose candidates are re-scored with finer
  SQ8 codes (``IVFn,PQmx4fs,Refine(SQ8)``), or plain ``IVFn,PQmx8`` when memory is short
- ``ivfsq``: inverted lists of scalar-quantized codes (``IVFn,SQ8``, or ``SQ6`` when short)
- ``auto``: exact search when the vectors fit ``--max-memory`` and a query scans at most
  ``FLAT_WORK_LIMIT`` floats (N * d); else the most accurate kind that fits (IVF over full vectors,
  then SQ8, SQ6, and PQ codes, where more lists win over a few more bytes). Its search parameters
  are then tuned to the recall target (see :mod:`embedsearch.index.tune`).

Every plan has ``nlist`` lists of about ``sqrt(N)`` rows trained on at least 39 sample
points a list (faiss warns below that) -- see :func:`training_rows`.

Example:
    >>> plan = choose_index(200_000, 128, 30 * 2**20)
    >>> plan.kind, plan.factory
    ('ivfsq', 'IVF1024,SQ8')
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Literal, get_args

from embedsearch.errors import InputError

Kind = Literal["auto", "flat", "hnsw", "ivf", "ivfsq", "ivfpq"]
KINDS: tuple[str, ...] = get_args(Kind)
# The measurements behind these rules: benchmarks/RESULTS.md, "issue 16" / "index" (planning).
# Exact search while a query scans at most this many floats (and the vectors fit): recall 1.0,
# no training, and a query still answered in well under 20 ms on 2 cores.
FLAT_WORK_LIMIT = 2**27
# A PQ codec with more lists wins over one with more bytes a vector when it keeps at least
# this share of the bytes (smaller residuals beat a few more bytes).
PQ_BYTES_FOR_LISTS = 0.9
ID_BYTES = 8  # inverted lists and IDMap store one int64 key per vector
HNSW_M = 32
MIN_POINTS_PER_LIST = 39  # faiss k-means warns below this
# Coarse k-means on 40 points a list (faiss warns below 39): it dominates the build of large
# indexes, and more points did not raise the tuned recall.
TRAIN_POINTS_PER_LIST = 40
# PQ codebooks train on 50 points a centroid: 12,800 rows at 8 bits, 51,200 at 10
PQ_POINTS_PER_CENTROID = 50
MAX_TRAIN_BYTES = 512 * 2**20


@dataclass(frozen=True)
class IndexPlan:
    """An index to build: ``factory`` for faiss, its estimated size and why it was chosen."""

    kind: str
    factory: str
    nlist: int
    estimated_bytes: int
    fits: bool
    reason: str


def ivf_nlist(n: int) -> int:
    """Power of two near ``2·sqrt(n)``, capped so every list gets >= 39 training points."""
    want = 2 ** round(math.log2(max(1.0, 2 * math.sqrt(n))))
    cap = max(1, n // MIN_POINTS_PER_LIST)
    return max(1, min(want, 2 ** int(math.log2(cap))))


def pq_bits(factory: str) -> int | None:
    """Bits per PQ code of a factory string (``...,PQ104x10np`` -> 10), None without PQ.

    Example:
        >>> pq_bits("OPQ104_208,IVF2048,PQ104x10np"), pq_bits("IVF1024,SQ8")
        (10, None)
    """
    match = re.search(r"(?:^|,)PQ\d+(?:x(\d+))?", factory)  # a PQ component, not the OPQ rotation
    if match is None:
        return None
    return int(match.group(1) or 8)


def training_rows(plan: IndexPlan, n: int, dim: int) -> int:
    """How many sample rows to train on: 40 a list (>= 39), within a fixed memory cap."""
    if plan.nlist == 0:
        return 0
    bits = pq_bits(plan.factory)
    want = max(TRAIN_POINTS_PER_LIST * plan.nlist, PQ_POINTS_PER_CENTROID * 2**bits if bits else 0)
    cap = max(MIN_POINTS_PER_LIST * plan.nlist, MAX_TRAIN_BYTES // (4 * dim))
    return int(min(n, want, cap))


def _ivf_bytes(n: int, dim: int, nlist: int, code_bytes: float) -> int:
    return int(n * (code_bytes + ID_BYTES) + nlist * dim * 4 + 64 * nlist)


@dataclass(frozen=True)
class Codec:
    """How an IVF index stores vectors: ``{prefix}IVFn,{suffix}``, bytes a vector and fixed bytes.

    ``ivf_dim`` is the dimension the inverted lists see (an OPQ rotation may change it) and
    ``fixed_bytes`` what does not grow with N or the lists (the rotation, the PQ codebooks).
    """

    suffix: str
    code_bytes: float
    prefix: str = ""
    ivf_dim: int = 0
    fixed_bytes: int = 0

    def factory(self, nlist: int) -> str:
        """The faiss factory string of this codec over ``nlist`` lists."""
        return f"{self.prefix}IVF{nlist},{self.suffix}"

    def size(self, n: int, dim: int, nlist: int) -> int:
        """Estimated index bytes for ``n`` vectors of ``dim`` in ``nlist`` lists."""
        return _ivf_bytes(n, self.ivf_dim or dim, nlist, self.code_bytes) + self.fixed_bytes


def _pq_codec(dim: int, m: int, nbits: int) -> Codec:
    """``m`` PQ sub-quantizers; with 8 or 10 bits behind a learned OPQ rotation to ``2·m`` dims.

    OPQ rotates the vectors so that each 2-d sub-space carries a similar share of the
    variance (plain PQ wastes codes on the near-empty dimensions of low-rank embeddings).
    Orthogonal, so it keeps inner products and the ranking. The rotation needs >= 8-bit codebooks.
    """
    code = math.ceil(m * nbits / 8)
    if nbits < 8:
        # np: no polysemous training (minutes on 2 cores, and unused here)
        return Codec(f"PQ{m}x{nbits}np", code, fixed_bytes=2**nbits * dim * 4)
    out = 2 * m
    return Codec(
        f"PQ{m}x{nbits}np",
        code,
        prefix=f"OPQ{m}_{out},",
        ivf_dim=out,
        fixed_bytes=2**nbits * out * 4 + dim * out * 4,
    )


def _codecs(dim: int, n: int) -> list[Codec]:
    """Compressed IVF codecs, most accurate (and largest) first.

    SQ8, SQ6, then every PQ size in steps of 4 sub-quantizers (OPQ-rotated), so that the chosen
    one uses most of the budget: recall grows with the bytes a vector (SQ4 is not offered: it
    costs PQ's bytes for less recall). Codebooks get 10 bits (1,024 centroids) when there are
    rows enough to train them: at the same bytes a vector, fewer sub-quantizers with more
    centroids each quantize better; with too few rows, fewer bits.
    """
    options = [Codec("SQ8", dim), Codec("SQ6", dim * 3 / 4)]
    nbits = next(b for b in (10, 8, 6, 4) if n >= MIN_POINTS_PER_LIST * 2**b or b == 4)
    # OPQ codes stay below SQ6's dim * 3/4 bytes (SQ6 wins there); plain PQ needs m | dim
    largest = (dim * 6 // nbits - 1) // 4 * 4 if nbits >= 8 else dim // 2
    for m in range(largest, 3, -4):
        if nbits >= 8 or dim % m == 0:
            options.append(_pq_codec(dim, m, nbits))
    return options


def _nlists(codec: Codec, n: int) -> list[int]:
    """List counts to try, most first; PQ codecs try 4x and 2x more lists, then up to 4x fewer.

    More lists leave smaller residuals for the PQ codes. On tiny budgets the centroids are a
    large share of the index, and fewer lists buy more bytes a vector; more rows a list cost
    query time, of which there is plenty to spare.
    """
    nlist = ivf_nlist(n)
    if not codec.suffix.startswith("PQ"):
        return [nlist]
    more = [f * nlist for f in (4, 2) if n >= f * nlist * MIN_POINTS_PER_LIST]
    return more + [c for c in (nlist, nlist // 2, nlist // 4) if c >= 16] or [nlist]


def _refined_pq(dim: int) -> tuple[str, float] | None:
    """Fast-scan PQ candidates re-scored with SQ8 codes: the explicit ``ivfpq`` kind."""
    if dim % 4:
        return None
    # IndexRefine cannot add with ids: an IDMap2 holds the keys (8 more bytes a vector)
    return f"PQ{dim // 4}x4fs,Refine(SQ8)", dim / 8 + dim + ID_BYTES


def plan_kind(kind: str, n: int, dim: int, max_memory: int) -> IndexPlan:
    """The plan for an explicit ``kind`` (the budget is only checked and reported)."""
    nlist = ivf_nlist(n)

    def asked(factory: str, lists: int, size: int, what: str) -> IndexPlan:
        return IndexPlan(kind, factory, lists, size, size <= max_memory, f"asked for {what}")

    if kind == "flat":
        return asked("IDMap2,Flat", 0, n * (dim * 4 + ID_BYTES), "exact search")
    if kind == "hnsw":
        size = int(n * (dim * 4 + ID_BYTES + HNSW_M * 2 * 4 * 1.1))
        return asked(f"IDMap2,HNSW{HNSW_M},Flat", 0, size, "HNSW")
    if kind == "ivf":
        return asked(f"IVF{nlist},Flat", nlist, _ivf_bytes(n, dim, nlist, dim * 4), "IVF")
    if kind == "ivfsq":
        # SQ8 codes when they fit, else SQ6 (reported as not fitting when even those do not)
        sq8, sq6 = _codecs(dim, n)[:2]
        codec = sq8 if sq8.size(n, dim, nlist) <= max_memory else sq6
        return asked(codec.factory(nlist), nlist, codec.size(n, dim, nlist), "IVF-SQ")
    if kind == "ivfpq":
        # refined fast-scan PQ when its SQ8 codes fit, else the most accurate plain PQ that fits
        refined = _refined_pq(dim)
        options = ([Codec(refined[0], refined[1], prefix="IDMap2,")] if refined else []) + [
            c for c in _codecs(dim, n) if c.suffix.startswith("PQ")
        ]
        for codec in options:
            size = codec.size(n, dim, nlist)
            if size <= max_memory or codec is options[-1]:
                return asked(codec.factory(nlist), nlist, size, "a compressed IVF index")
    raise InputError(f"unknown --kind {kind!r}: use one of {', '.join(KINDS)}")


def choose_index(n: int, dim: int, max_memory: int, kind: str = "auto") -> IndexPlan:
    """Pick the index for ``n`` vectors of ``dim`` within ``max_memory`` bytes.

    ``auto`` takes exact search for small corpora, else the most accurate IVF variant that
    fits; when even the smallest does not fit it returns that one with ``fits=False``.
    """
    if n <= 0:
        raise InputError("no embeddings to index")
    if kind != "auto":
        return plan_kind(kind, n, dim, max_memory)
    flat = plan_kind("flat", n, dim, max_memory)
    if flat.fits and n * dim <= FLAT_WORK_LIMIT:
        why = f"{n:,} vectors: exact search is fast enough and fits the budget"
        return replace(flat, reason=why)
    best = f"most accurate index within the {max_memory:,} byte budget"
    options = [Codec("Flat", dim * 4)] + _codecs(dim, n)
    fitting_pq: list[tuple[Codec, int, int]] = []
    for codec in options:
        for nlist in _nlists(codec, n):
            size = codec.size(n, dim, nlist)
            if size > max_memory:
                continue
            if codec.suffix.startswith("PQ"):
                fitting_pq.append((codec, nlist, size))
            else:
                kind_name = "ivf" if codec.suffix == "Flat" else "ivfsq"
                return IndexPlan(kind_name, codec.factory(nlist), nlist, size, True, best)
    if fitting_pq:
        most_bytes = max(codec.code_bytes for codec, _, _ in fitting_pq)
        near = [
            option
            for option in fitting_pq
            if option[0].code_bytes >= PQ_BYTES_FOR_LISTS * most_bytes
        ]
        codec, nlist, size = max(near, key=lambda option: (option[1], option[0].code_bytes))
        return IndexPlan("ivfpq", codec.factory(nlist), nlist, size, True, best)
    codec, nlist = options[-1], ivf_nlist(n)
    why = "nothing fits the memory budget; this is the smallest index"
    return IndexPlan("ivfpq", codec.factory(nlist), nlist, codec.size(n, dim, nlist), False, why)
