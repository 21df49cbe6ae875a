"""Concentrated vectors (a common offset plus small noise, like untrained SimCLR features):
compressed indexes reach the target when the budget allows, centring, and the note that names
the real limit when they cannot (issue 19)."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from embedsearch.index import Searcher, append_index, build_index
from embedsearch.index.centring import centred, concentration
from embedsearch.index.layout import read_info
from embedsearch.store.arrays import write_embedding_dir


def concentrated(n: int, dim: int = 128, seed: int = 0) -> np.ndarray:
    """Rows near one positive direction (mean pairwise cosine ~0.94): offset + rank-16 + noise."""
    rng = np.random.default_rng(seed)
    offset = np.random.default_rng(7).random(dim).astype(np.float32)
    basis = np.random.default_rng(8).standard_normal((16, dim)).astype(np.float32) / np.sqrt(dim)
    x = (
        offset / np.linalg.norm(offset)
        + 0.06 * rng.standard_normal((n, 16)).astype(np.float32) @ basis
        + 0.018 * rng.standard_normal((n, dim)).astype(np.float32) / np.sqrt(dim)
    )
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def emb(tmp_path_factory):
    path = tmp_path_factory.mktemp("concentrated") / "emb"
    write_embedding_dir(path, concentrated(6000), model="external:test", fingerprint="fp")
    return path


def test_the_generated_vectors_are_concentrated() -> None:
    assert concentration(concentrated(500)) > 0.9


def test_ivfpq_at_the_default_budget_meets_the_target(emb, tmp_path) -> None:
    summary = build_index([emb], tmp_path / "i", kind="ivfpq")
    assert summary.met


def test_the_default_keeps_raw_cosine(emb, tmp_path) -> None:
    # centring did not find copies of real photos better (benchmarks/RESULTS.md, issue 19)
    build_index([emb], tmp_path / "i", kind="flat")
    assert read_info(tmp_path / "i").similarity == "cosine"


def test_centring_makes_the_compressed_search_cheaper(emb, tmp_path) -> None:
    raw = build_index([emb], tmp_path / "raw", kind="ivfpq")
    centred_ = build_index([emb], tmp_path / "centred", kind="ivfpq", centre="yes")
    assert centred_.search_params["k_factor"] < raw.search_params["k_factor"]


def test_tuning_escalates_k_factor_when_the_first_grid_misses(emb, tmp_path) -> None:
    # without centring the fast-scan PQ candidates rank the neighbours far down: only
    # k_factor > 16 reaches the target
    summary = build_index([emb], tmp_path / "i", kind="ivfpq", centre="no")
    assert summary.met
    assert summary.search_params["k_factor"] > 16


def test_sq8_refine_escalates_to_an_exact_refine_when_it_fits(emb, tmp_path) -> None:
    # SQ8 re-scoring tops out near 0.96 here; the candidates hold 0.998 of the neighbours
    summary = build_index([emb], tmp_path / "i", kind="ivfpq", centre="no", target_recall=0.99)
    assert summary.factory.endswith("Refine(Flat)")


def test_the_exact_refine_reaches_the_target(emb, tmp_path) -> None:
    summary = build_index([emb], tmp_path / "i", kind="ivfpq", centre="no", target_recall=0.99)
    assert summary.met


def test_a_missed_target_names_refine_precision_and_the_budget_it_needs(emb, tmp_path) -> None:
    # SQ8 codes fit 2 MiB, the full vectors of an exact refine (3.1 MiB) do not
    summary = build_index(
        [emb], tmp_path / "i", kind="ivfpq", centre="no", target_recall=0.99, max_memory="2M"
    )
    assert "limit: refine precision" in summary.notes[-1]
    assert "raise --max-memory to at least 3.1 MiB" in summary.notes[-1]


def test_a_missed_target_under_a_small_budget_says_how_much_would_fit(emb, tmp_path) -> None:
    summary = build_index([emb], tmp_path / "i", kind="ivfpq", centre="no", max_memory="600K")
    assert "raise --max-memory to at least 3.0 MiB" in summary.notes[-1]


def test_auto_centres_concentrated_vectors_and_says_so(emb, tmp_path) -> None:
    build_index([emb], tmp_path / "i", kind="flat", centre="auto")
    assert read_info(tmp_path / "i").similarity == "centred cosine"


def test_auto_leaves_spread_vectors_alone(tmp_path, vectors) -> None:
    write_embedding_dir(tmp_path / "emb", vectors(2000, 32, 0), model="external:t", fingerprint="f")
    build_index([tmp_path / "emb"], tmp_path / "i", kind="flat", centre="auto")
    assert read_info(tmp_path / "i").similarity == "cosine"


def test_a_centred_flat_index_is_exact_search_by_centred_cosine(emb, tmp_path) -> None:
    corpus = concentrated(6000)
    build_index([emb], tmp_path / "i", kind="flat", centre="yes")
    searcher = Searcher.open(tmp_path / "i")
    scores, keys = searcher.search_raw(corpus[:20], 5)
    x = centred(corpus, corpus.mean(0))
    want, _ = faiss.knn(x[:20], x, 5, metric=faiss.METRIC_INNER_PRODUCT)
    # the mean is learned from a sample: scores agree to sampling error, not bit for bit
    assert np.abs(scores - want).max() < 0.02


def test_the_index_records_what_a_high_score_is(emb, tmp_path) -> None:
    build_index([emb], tmp_path / "i", kind="flat", centre="yes")
    spread = read_info(tmp_path / "i").score_percentiles
    assert spread["unrelated"]["p99"] < spread["nearest"]["p50"]


def test_appending_to_a_centred_index_measures_recall_by_centred_cosine(emb, tmp_path) -> None:
    # a flat index is exact: recall 1.0 only if the ground truth ranks by what the index ranks by
    build_index([emb], tmp_path / "i", kind="flat", centre="yes")
    more = tmp_path / "more"
    write_embedding_dir(more, concentrated(500, seed=1), model="external:test", fingerprint="fp")
    summary = append_index([more], tmp_path / "i")
    assert summary.recall == 1.0


def test_the_index_command_says_what_a_high_score_is(emb, tmp_path, run_cli) -> None:
    result = run_cli("index", emb, "--out", tmp_path / "i", "--kind", "flat", "--centre", "yes")
    assert "unrelated pairs" in result.stderr
