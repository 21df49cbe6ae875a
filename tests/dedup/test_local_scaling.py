"""Local scaling: scores less the two items' neighbourhood levels, in the search and the
calibration."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pandas as pd
import pytest

from embedsearch import find_duplicates
from embedsearch.dedup.calibration import choose_local_scaling
from embedsearch.dedup.local_scaling import MAX_BACKGROUND, LocalScaling, fit_local_scaling
from embedsearch.dedup.pair_search import search_pairs
from embedsearch.dedup.threshold import SelfCopies
from embedsearch.errors import InputError


def dense_and_sparse(gen, n_dense: int = 100, n_sparse: int = 300) -> np.ndarray:
    """``n_dense`` rows packed around one direction (pairwise cosines ~0.9), then ``n_sparse``
    random rows; the last sparse row is a copy (cosine 0.8) of the one before it."""
    centre = gen.random_unit(1, 32, seed=1)[0]
    dense = np.stack([gen.near_copy(centre, 0.95, seed=100 + i) for i in range(n_dense)])
    sparse = gen.random_unit(n_sparse, 32, seed=2)
    sparse[-1] = gen.near_copy(sparse[-2], 0.8, seed=3)
    return np.concatenate([dense, sparse]).astype(np.float32)


def brute_force_pairs(
    x: np.ndarray, y: np.ndarray, levels_x: np.ndarray, levels_y: np.ndarray, threshold: float
) -> set[tuple[int, int]]:
    scores = LocalScaling.adjust(x @ y.T, levels_x[:, None], levels_y[None, :])
    return {(int(i), int(j)) for i, j in zip(*np.nonzero(scores >= threshold), strict=True)}


def test_an_items_level_leaves_out_the_item_itself(gen) -> None:
    x = gen.random_unit(50, 16, seed=0)
    scores = x @ x.T
    np.fill_diagonal(scores, -np.inf)
    expected = np.sort(scores, axis=1)[:, -10:].mean(axis=1)
    assert np.allclose(LocalScaling(x).levels(x), expected, atol=1e-6)


def test_the_background_is_capped(gen) -> None:
    sample = gen.random_unit(MAX_BACKGROUND + 500, 8, seed=0)
    assert len(fit_local_scaling(sample).background) == MAX_BACKGROUND


def test_search_within_one_set_finds_every_scaled_pair_of_brute_force(gen) -> None:
    x = dense_and_sparse(gen, n_dense=40, n_sparse=60)  # k=3 < the dense group: range searches
    levels = LocalScaling(x).levels(x)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    near = search_pairs(index, iter([(0, x)]), 0.05, k=3, levels=levels)
    expected = {(a, b) for a, b in brute_force_pairs(x, x, levels, levels, 0.05) if a < b}
    assert set(zip(near.rows_a.tolist(), near.rows_b.tolist(), strict=True)) == expected


def test_search_across_two_sets_finds_every_scaled_pair_of_brute_force(gen) -> None:
    x = dense_and_sparse(gen, n_dense=40, n_sparse=60)
    main, other = x[::2], x[1::2]
    levels = LocalScaling(x).levels(np.concatenate([main, other]))
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(other)
    near = search_pairs(
        index, iter([(0, main)]), 0.05, k=3, same_set=False, levels=levels, index_offset=len(main)
    )
    expected = brute_force_pairs(main, other, levels[: len(main)], levels[len(main) :], 0.05)
    assert set(zip(near.rows_a.tolist(), near.rows_b.tolist(), strict=True)) == expected


def test_a_range_search_across_sets_keeps_a_match_numbered_like_its_query(gen) -> None:
    # Main row 0's matches include the other set's row 0: a different item, not itself.
    x = np.repeat(gen.random_unit(1, 8, seed=0), 4, axis=0)
    index = faiss.IndexFlatIP(8)
    index.add(x)
    near = search_pairs(index, iter([(0, x[:1])]), 0.9, k=2, same_set=False)
    assert sorted(near.rows_b.tolist()) == [0, 1, 2, 3]


def test_a_sparse_copy_passes_where_dense_neighbours_do_not(tmp_path, gen) -> None:
    emb = gen.write_dir(tmp_path / "emb", dense_and_sparse(gen))
    result = find_duplicates(emb, out=tmp_path / "out", threshold=0.3, local_scaling=True)
    pairs = pd.read_parquet(result.out / "pairs.parquet")
    assert list(zip(pairs.id_a, pairs.id_b, strict=True)) == [(398, 399)]


def test_dedup_json_says_whether_scores_are_scaled(tmp_path, gen) -> None:
    emb = gen.write_dir(tmp_path / "emb", dense_and_sparse(gen))
    result = find_duplicates(emb, out=tmp_path / "out", threshold=0.3, local_scaling=True)
    assert json.loads((result.out / "dedup.json").read_text())["local_scaling"] == "on: asked for"


def test_a_given_threshold_compares_plain_cosines(tmp_path, gen) -> None:
    emb = gen.write_dir(tmp_path / "emb", dense_and_sparse(gen))
    assert find_duplicates(emb, out=tmp_path / "out", threshold=0.9).space == "raw cosine"


def test_calibration_scales_when_more_strong_self_copies_pass(gen) -> None:
    x = dense_and_sparse(gen)
    originals = x[100:150]  # sparse rows, each with a strong copy at cosine 0.8
    copies = np.stack([gen.near_copy(v, 0.8, seed=500 + i) for i, v in enumerate(originals)])
    self_copies = SelfCopies(originals, {"strong": copies})
    scaling, why = choose_local_scaling(x, len(x), self_copies, None, None)
    assert why.startswith("on: ")


def test_small_corpora_are_not_scaled_by_default(gen) -> None:
    x = gen.random_unit(50, 8, seed=0)
    copies = SelfCopies(x, {"strong": x})
    assert choose_local_scaling(x, len(x), copies, None, None)[1].startswith("off: 50 rows")


def test_semdedup_refuses_local_scaling(tmp_path, gen) -> None:
    emb = gen.write_dir(tmp_path / "emb", gen.random_unit(20, 8, seed=0))
    with pytest.raises(InputError, match="--local-scaling works with --method knn only"):
        find_duplicates(emb, out=tmp_path / "out", method="semdedup", local_scaling=True)


def test_the_cell_join_finds_every_scaled_pair_of_brute_force(gen) -> None:
    from embedsearch.dedup.cell_join import join_cells

    x = dense_and_sparse(gen, n_dense=40, n_sparse=60)
    levels = LocalScaling(x).levels(x)
    probes = np.tile(np.arange(4, dtype=np.int32), (len(x), 1))  # every row probes every cell
    probes[:, 0] = np.arange(len(x)) % 4  # its own cell first
    for row in probes:
        row[1:] = [c for c in range(4) if c != row[0]]
    near = join_cells(x, probes, 4, 0.05, levels=levels)
    expected = {(a, b) for a, b in brute_force_pairs(x, x, levels, levels, 0.05) if a < b}
    assert set(zip(near.rows_a.tolist(), near.rows_b.tolist(), strict=True)) == expected
