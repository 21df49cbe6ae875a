"""The cell-by-cell pair search of large same-set dedups: the pairs of brute force when every cell
is probed, the pairs of faiss's IVF search at a realistic nprobe, each pair once."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pytest

from embedsearch import find_duplicates
from embedsearch.dedup import cell_join, pair_search
from embedsearch.dedup.cell_join import join_cells
from embedsearch.dedup.cells import load_matrix, probe_cells, train_cells
from embedsearch.dedup.pair_search import add_presized, search_pairs
from embedsearch.store.arrays import write_embedding_dir

THRESHOLD = 0.9


def clustered(n: int, dim: int, clusters: int, copies: int, seed: int) -> np.ndarray:
    """Unit vectors around ``clusters`` centres, the last ``copies`` rows near copies (cos ~0.95)
    of the first ones, so pairs sit both inside cells and across cell borders."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    x = centres[rng.integers(0, clusters, n)] + 0.6 * rng.normal(size=(n, dim))
    x[n - copies :] = x[:copies] + 0.3 / np.sqrt(dim) * rng.normal(size=(copies, dim))
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_pairs(x: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    sims = x @ x.T
    return {
        (int(a), int(b)) for a, b in zip(*np.nonzero(np.triu(sims >= threshold, 1)), strict=True)
    }


def pairs_of(near) -> set[tuple[int, int]]:
    return set(zip(near.rows_a.tolist(), near.rows_b.tolist(), strict=True))


def join_all_cells(x: np.ndarray, nlist: int):
    quantizer = train_cells(x, nlist)
    return join_cells(x, probe_cells(x, quantizer, nlist), nlist, THRESHOLD)


@pytest.fixture(scope="module")
def small() -> np.ndarray:
    return clustered(600, 16, clusters=12, copies=40, seed=1)


@pytest.fixture(scope="module")
def ivf_case() -> tuple[np.ndarray, object, object]:
    """3,000 random 6-d rows (many pairs above the threshold, some across cell borders), an
    IVF64 index searched at nprobe 8 the way dedup did before the cell join, and the cell join
    over the same quantizer."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3000, 6)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(6), 6, 64, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = 1234
    index.train(x)

    def blocks():
        for first in range(0, len(x), 700):
            yield first, x[first : first + 700]

    add_presized(index, blocks, len(x))
    index.nprobe = 8
    by_index = search_pairs(index, blocks(), THRESHOLD, k=10, same_set=True)
    by_cells = join_cells(x, probe_cells(x, index.quantizer, 8), 64, THRESHOLD)
    return x, by_index, by_cells


def test_every_cell_probed_finds_the_brute_force_pairs(small) -> None:
    assert pairs_of(join_all_cells(small, 12)) == brute_pairs(small, THRESHOLD)


def test_every_cell_probed_gives_each_row_its_best_score(small) -> None:
    sims = small @ small.T
    np.fill_diagonal(sims, -np.inf)
    np.testing.assert_allclose(join_all_cells(small, 12).best, sims.max(axis=1), atol=1e-6)


def test_scores_are_the_exact_inner_products(small) -> None:
    near = join_all_cells(small, 12)
    exact = (small[near.rows_a] * small[near.rows_b]).sum(axis=1)
    np.testing.assert_allclose(near.scores, exact, atol=1e-6)


def test_each_pair_is_listed_once_with_the_smaller_row_first(small) -> None:
    x = np.concatenate([small, small[:50]])  # exact copies: the same vector in two rows
    near = join_all_cells(x, 12)
    keys = near.rows_a * len(x) + near.rows_b
    assert len(np.unique(keys)) == len(keys)
    assert (near.rows_a < near.rows_b).all()


def test_blocked_products_find_the_pairs_of_one_product(small, monkeypatch) -> None:
    # Blocks far smaller than a cell: a member meets itself across block borders too.
    monkeypatch.setattr(cell_join, "SCORES_PER_PRODUCT", 7)
    monkeypatch.setattr(cell_join, "MIN_PROBER_BLOCK", 7)
    monkeypatch.setattr(cell_join, "MEMBER_BLOCK", 5)
    assert pairs_of(join_all_cells(small, 12)) == brute_pairs(small, THRESHOLD)


def test_finds_the_pairs_of_the_ivf_search_at_nprobe_8(ivf_case) -> None:
    _, by_index, by_cells = ivf_case
    assert pairs_of(by_cells) == pairs_of(by_index)


def test_the_ivf_comparison_is_not_trivial(ivf_case) -> None:
    # nprobe 8 of 64 cells misses some brute-force pairs: the equality above is about cells.
    x, _, by_cells = ivf_case
    assert pairs_of(by_cells) < brute_pairs(x, THRESHOLD)


def test_gives_each_row_the_best_score_of_the_ivf_search(ivf_case) -> None:
    _, by_index, by_cells = ivf_case
    np.testing.assert_allclose(by_cells.best, by_index.best, atol=1e-6)


def test_load_matrix_refuses_fewer_rows_than_announced() -> None:
    with pytest.raises(ValueError, match="hold 3 rows, the catalog 4"):
        load_matrix(iter([(0, np.ones((3, 2)))]), 4, 2)


def test_load_matrix_refuses_more_rows_than_announced() -> None:
    with pytest.raises(ValueError, match="more than the 2 rows"):
        load_matrix(iter([(0, np.ones((3, 2)))]), 2, 2)


@pytest.fixture(scope="module", params=["first", "centroid"])
def both_searches(request, tmp_path_factory) -> tuple[Path, Path, object]:
    """One set deduplicated by the flat search and by the cell join with every cell probed
    (``keep="centroid"`` reads vectors back: from the index, or from the join's matrix)."""
    root = tmp_path_factory.mktemp(f"both-{request.param}")
    x = clustered(1500, 16, clusters=10, copies=60, seed=3)
    x[100:103] = x[103]  # a group of three with the same vector
    hashes = [f"h{i}" for i in range(len(x))]
    hashes[200] = hashes[201]  # same file, different vectors: an exact pair
    emb = root / "emb"
    write_embedding_dir(
        emb, x, sources=[f"item_{i}" for i in range(len(x))], content_hashes=hashes, shard_rows=97
    )
    results = []
    for name, limit in (("flat", pair_search.EXACT_LIMIT), ("cells", 100)):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(pair_search, "EXACT_LIMIT", limit)
            results.append(
                find_duplicates(
                    emb,
                    out=root / name,
                    threshold=THRESHOLD,
                    whiten=False,
                    nprobe=64,
                    keep=request.param,
                )
            )
    return results[0].out, results[1].out, results[1]


def test_sets_above_the_limit_are_joined_cell_by_cell(both_searches) -> None:
    assert both_searches[2].search.endswith("joined cell by cell")


def test_the_cell_join_writes_the_pairs_of_the_flat_search(both_searches) -> None:
    # Sorted by id: pairs.parquet lists pairs by score, and pairs a float rounding apart in
    # score may swap places.
    flat, cells = (
        pd.read_parquet(out / "pairs.parquet").sort_values(["id_a", "id_b"], ignore_index=True)
        for out in both_searches[:2]
    )
    pd.testing.assert_frame_equal(cells.drop(columns="score"), flat.drop(columns="score"))
    np.testing.assert_allclose(cells.score, flat.score, atol=1e-6)


def test_the_cell_join_writes_the_groups_of_the_flat_search(both_searches) -> None:
    flat, cells = (pd.read_parquet(out / "groups.parquet") for out in both_searches[:2])
    pd.testing.assert_frame_equal(cells, flat)


def test_the_cell_join_removes_what_the_flat_search_removes(both_searches) -> None:
    flat, cells = ((out / "remove.txt").read_text() for out in both_searches[:2])
    assert cells == flat
