"""The auto choice across sizes and budgets, explicit kinds, training sample sizes."""

from __future__ import annotations

import pytest

from embedsearch.errors import InputError
from embedsearch.index.plan import (
    KINDS,
    MIN_POINTS_PER_LIST,
    _codecs,
    choose_index,
    ivf_nlist,
    training_rows,
)

MB, GB = 2**20, 2**30


@pytest.mark.parametrize(
    "n, dim, budget, kind, factory",
    [
        (5_000, 64, 1 * GB, "flat", "IDMap2,Flat"),  # small: brute force
        (200_000, 128, 4 * GB, "flat", "IDMap2,Flat"),  # fits and brute force is fast
        (200_000, 512, 1 * GB, "flat", "IDMap2,Flat"),  # 2^26.6 floats a query: still exact
        (1_000_000, 128, 4 * GB, "flat", "IDMap2,Flat"),  # just under 2^27
        (2_000_000, 128, 4 * GB, "ivf", "IVF2048,Flat"),  # too much work for brute force
        (200_000, 128, 100 * MB, "flat", "IDMap2,Flat"),  # 104 MB of vectors just fit
        (200_000, 128, 90 * MB, "ivfsq", "IVF1024,SQ8"),  # they do not
        (200_000, 128, 30 * MB, "ivfsq", "IVF1024,SQ8"),
        (200_000, 128, 25 * MB, "ivfsq", "IVF1024,SQ6"),
        (
            1_000_000,
            128,
            100 * MB,
            "ivfpq",
            "OPQ72_144,IVF8192,PQ72x10np",
        ),  # most of the budget in codes, 4x lists
        (1_000_000, 128, 30 * MB, "ivfpq", "OPQ16_32,IVF8192,PQ16x10np"),
        (
            200_000,
            512,
            30 * MB,
            "ivfpq",
            "OPQ104_208,IVF2048,PQ104x10np",
        ),  # 4x the lists for 7 % fewer bytes
        (
            20_000,
            128,
            1 * MB,
            "ivfpq",
            "OPQ36_72,IVF128,PQ36x8np",
        ),  # too few rows for 1,024 centroids
        (5_000, 512, 1 * MB, "ivfpq", "IVF128,PQ128x6np"),  # too few rows for OPQ's 8 bits
    ],
)
def test_auto_picks_the_most_accurate_index_that_fits(n, dim, budget, kind, factory) -> None:
    plan = choose_index(n, dim, budget)
    assert (plan.kind, plan.factory) == (kind, factory)
    assert plan.fits
    assert plan.estimated_bytes <= budget


def test_auto_says_when_nothing_fits() -> None:
    plan = choose_index(1_000_000, 128, 1 * MB)
    assert not plan.fits
    assert plan.estimated_bytes > 1 * MB
    assert "nothing fits" in plan.reason
    assert "PQ" in plan.factory


@pytest.mark.parametrize(
    "kind, prefix",
    [
        ("flat", "IDMap2,Flat"),
        ("hnsw", "IDMap2,HNSW32"),
        ("ivf", "IVF"),
        ("ivfsq", "IVF"),
        ("ivfpq", "IDMap2,IVF"),
    ],
)
def test_explicit_kinds(kind, prefix) -> None:
    plan = choose_index(100_000, 64, 1 * GB, kind=kind)
    assert plan.kind == kind
    assert plan.factory.startswith(prefix)
    if kind == "ivfpq":
        # candidates re-scored with finer codes when memory allows
        assert "Refine(SQ8)" in plan.factory
        assert "Refine" not in choose_index(100_000, 64, 3 * MB, kind="ivfpq").factory


def test_every_kind_auto_produces_can_be_asked_for() -> None:
    assert set(KINDS) == {"auto", "flat", "hnsw", "ivf", "ivfsq", "ivfpq"}
    assert choose_index(100_000, 64, 1 * GB, kind="ivfsq").factory.endswith(",SQ8")
    assert choose_index(100_000, 64, 5 * MB, kind="ivfsq").factory.endswith(",SQ6")


def test_unknown_kind_and_empty_input_are_refused() -> None:
    with pytest.raises(InputError, match="unknown --kind"):
        choose_index(1000, 32, GB, kind="lsh")
    with pytest.raises(InputError, match="no embeddings"):
        choose_index(0, 32, GB)


@pytest.mark.parametrize("n", [100, 2_000, 50_000, 1_000_000])
def test_every_list_gets_enough_training_points(n) -> None:
    plan = choose_index(n, 32, GB, kind="ivf")
    assert plan.nlist == ivf_nlist(n)
    assert training_rows(plan, n, 32) >= min(n, MIN_POINTS_PER_LIST * plan.nlist)
    assert training_rows(plan, n, 32) <= n


def test_compressed_candidates_rotate_pq_codes_with_opq() -> None:
    pq = [c for c in _codecs(128, 1_000_000) if c.suffix.startswith("PQ")]
    m = [int(c.suffix[2:].split("x")[0]) for c in pq]
    assert pq
    assert all(
        c.prefix == f"OPQ{k}_{2 * k}," and c.suffix == f"PQ{k}x10np"
        for c, k in zip(pq, m, strict=False)
    )
    assert m[:3] == [72, 68, 64]
    assert [c.code_bytes for c in pq][:3] == [
        90,
        85,
        80,
    ]  # 10 bits a code
    assert max(c.code_bytes for c in pq) < 128 * 3 / 4  # below SQ6's bytes
    eight = [
        c for c in _codecs(128, 20_000) if c.suffix.startswith("PQ")
    ]  # < 39 rows a centroid of 1,024
    assert eight[0].suffix == "PQ92x8np"
    assert eight[0].code_bytes == 92
    assert eight[1].code_bytes == 88
    assert not any(
        c.prefix for c in _codecs(128, 5_000)
    )  # OPQ trains 8-bit codebooks: not on 5k rows
