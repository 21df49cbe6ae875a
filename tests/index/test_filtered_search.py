"""``where`` / ``min_score`` in searches: filtered inside faiss for every index kind, k hits when
k rows match, compared with exact filtered search; the SQL condition's errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedsearch.errors import InputError
from embedsearch.index import Searcher, build_index

N, DIM = 4000, 32
# (kind, centre): every wrapper the builds make -- IDMap2 (flat, hnsw, refined PQ), bare IVF,
# PreTransform (centring) around IVF + Refine
KINDS = [("flat", "no"), ("hnsw", "no"), ("ivf", "no"), ("ivfsq", "no"), ("ivfpq", "yes")]


def bucket_of(i: int) -> int:
    return (i * 7919) % 1000  # spread over 0..999 independently of the vectors


def clustered(n: int, seed: int) -> np.ndarray:
    """L2-normalised vectors in clusters on an 8-d subspace (the same for every seed)."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(1).standard_normal((8, DIM))
    centres = np.random.default_rng(2).standard_normal((50, 8))
    z = centres[rng.integers(0, 50, n)] + 0.4 * rng.standard_normal((n, 8))
    x = z @ basis + 0.2 * rng.standard_normal((n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The vectors and an index dir of each kind over them (built once for the module)."""
    from embedsearch.store.arrays import write_embedding_dir

    root = tmp_path_factory.mktemp("filtered")
    data = clustered(N, 0)
    ids = np.arange(N)
    write_embedding_dir(
        root / "emb",
        data,
        ids=ids,
        sources=[f"img/{i}.png" for i in ids],
        metadata={"bucket": [bucket_of(int(i)) for i in ids]},
        model="synthetic",
    )
    indexes = {}
    for kind, centre in [*KINDS, ("hnsw", "yes")]:
        out = root / f"{kind}-{centre}"
        build_index([root / "emb"], out, kind=kind, centre=centre, max_memory="1G")  # type: ignore[arg-type]
        indexes[kind if centre == "no" or kind == "ivfpq" else f"{kind}-centred"] = out
    return data, indexes


def vectors(n: int, dim: int, seed: int) -> np.ndarray:
    return clustered(n, 1000 + seed)


def exact_filtered(vectors: np.ndarray, queries: np.ndarray, allowed: np.ndarray, k: int):
    scores = queries @ vectors[allowed].T
    return allowed[np.argsort(-scores, axis=1, kind="stable")[:, :k]]


def allowed_ids(limit: int) -> np.ndarray:
    return np.array([i for i in range(N) if bucket_of(i) < limit])


@pytest.mark.parametrize("kind", [k for k, _ in KINDS])
def test_a_one_percent_filter_returns_k_hits(corpus, kind) -> None:
    _, indexes = corpus
    searcher = Searcher.open(indexes[kind], device="cpu")
    hits = searcher.search_vectors(vectors(20, DIM, 7), 10, where="bucket < 10")
    assert all(len(row) == 10 for row in hits)


@pytest.mark.parametrize("kind", [k for k, _ in KINDS])
def test_filtered_hits_are_only_rows_the_condition_keeps(corpus, kind) -> None:
    _, indexes = corpus
    searcher = Searcher.open(indexes[kind], device="cpu")
    hits = searcher.search_vectors(vectors(20, DIM, 7), 10, where="bucket < 10")
    assert {h.id for row in hits for h in row} <= set(allowed_ids(10).tolist())


@pytest.mark.parametrize("kind", [k for k, _ in KINDS])
@pytest.mark.parametrize("limit", [500, 100, 10, 1])
def test_filtered_recall_against_exact_filtered_search(corpus, kind, limit) -> None:
    data, indexes = corpus
    searcher = Searcher.open(indexes[kind], device="cpu")
    queries = vectors(30, DIM, 11)
    allowed = allowed_ids(limit)
    truth = exact_filtered(data, queries, allowed, 10)
    hits = searcher.search_vectors(queries, 10, where=f"bucket < {limit}")
    found = sum(
        len({h.id for h in row} & set(t.tolist())) for row, t in zip(hits, truth, strict=True)
    )
    # the centred PQ index ranks by centred cosine, the truth by cosine: a looser bound there
    assert found / truth.size >= (0.9 if kind == "ivfpq" else 0.95)


def test_hnsw_scans_few_allowed_rows_exactly(corpus) -> None:
    _, indexes = corpus
    searcher = Searcher.open(indexes["hnsw"], device="cpu")
    assert searcher.filter_plan("bucket < 1").method == "exact"


def test_hnsw_exact_scan_ranks_like_brute_force(corpus) -> None:
    data, indexes = corpus
    searcher = Searcher.open(indexes["hnsw"], device="cpu")
    queries = vectors(10, DIM, 3)
    truth = exact_filtered(data, queries, allowed_ids(2), 5)
    hits = searcher.search_vectors(queries, 5, where="bucket < 2")
    assert [[h.id for h in row] for row in hits] == truth.tolist()


def test_exact_scan_ranks_by_what_a_centred_index_ranks_by(corpus) -> None:
    from embedsearch.index.centring import centre_of, centred

    data, indexes = corpus
    searcher = Searcher.open(indexes["hnsw-centred"], device="cpu")
    mean = centre_of(searcher.index)
    queries = vectors(10, DIM, 3)
    truth = exact_filtered(centred(data, mean), centred(queries, mean), allowed_ids(2), 5)
    hits = searcher.search_vectors(queries, 5, where="bucket < 2")
    assert [[h.id for h in row] for row in hits] == truth.tolist()


def test_ivf_raises_nprobe_for_a_rarer_filter(corpus) -> None:
    _, indexes = corpus
    searcher = Searcher.open(indexes["ivf"], device="cpu")
    plan = searcher.filter_plan("bucket < 100")
    assert plan.params["nprobe"] > plan.tuned["nprobe"]


@pytest.mark.parametrize("kind", ["ivf", "ivfsq", "ivfpq"])
def test_ivf_scans_few_allowed_rows_exactly(corpus, kind) -> None:
    _, indexes = corpus
    searcher = Searcher.open(indexes[kind], device="cpu")
    assert searcher.filter_plan("bucket < 2").method == "exact"


def test_ivf_exact_scan_ranks_like_brute_force(corpus) -> None:
    data, indexes = corpus
    searcher = Searcher.open(indexes["ivf"], device="cpu")  # IVF,Flat: its codes are the vectors
    queries = vectors(10, DIM, 3)
    truth = exact_filtered(data, queries, allowed_ids(2), 5)
    hits = searcher.search_vectors(queries, 5, where="bucket < 2")
    assert [[h.id for h in row] for row in hits] == truth.tolist()


def test_exact_scan_streams_rows_in_blocks(corpus, monkeypatch) -> None:
    from embedsearch.index import filtered_search

    data, indexes = corpus
    monkeypatch.setattr(filtered_search, "ROW_BLOCK", 7)  # 40 allowed rows: 6 blocks
    searcher = Searcher.open(indexes["hnsw"], device="cpu")
    queries = vectors(4, DIM, 8)
    truth = exact_filtered(data, queries, allowed_ids(10), 10)
    hits = searcher.search_vectors(queries, 10, where="bucket < 10")
    assert [[h.id for h in row] for row in hits] == truth.tolist()


def test_fewer_matching_rows_than_k_give_that_many_hits(corpus) -> None:
    _, indexes = corpus
    searcher = Searcher.open(indexes["ivf"], device="cpu")
    hits = searcher.search_vectors(vectors(3, DIM, 5), 10, where="id IN (5, 17, 3001)")
    assert [sorted(h.id for h in row) for row in hits] == [[5, 17, 3001]] * 3


def test_a_condition_no_row_meets_gives_no_hits(corpus) -> None:
    _, indexes = corpus
    searcher = Searcher.open(indexes["hnsw"], device="cpu")
    assert searcher.search_vectors(vectors(2, DIM, 5), 10, where="bucket > 5000") == [[], []]


def test_source_is_a_filter_column(corpus) -> None:
    _, indexes = corpus
    searcher = Searcher.open(indexes["flat"], device="cpu")
    hits = searcher.search_vector(vectors(1, DIM, 5)[0], 5, where="source LIKE 'img/12%'")
    assert all(h.source.startswith("img/12") for h in hits)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_min_score_leaves_out_lower_scores(corpus, kind) -> None:
    _, indexes = corpus
    searcher = Searcher.open(indexes[kind], device="cpu")
    query = vectors(1, DIM, 9)
    floor = searcher.search_vectors(query, 10)[0][4].score  # the 5th best score
    hits = searcher.search_vectors(query, 10, min_score=floor)[0]
    assert min(h.score for h in hits) >= floor


def test_min_score_keeps_the_hits_above_it(corpus) -> None:
    _, indexes = corpus
    searcher = Searcher.open(indexes["flat"], device="cpu")
    query = vectors(1, DIM, 9)
    plain = searcher.search_vectors(query, 10)[0]
    hits = searcher.search_vectors(query, 10, min_score=plain[4].score)[0]
    assert [h.id for h in hits] == [h.id for h in plain[:5]]


def test_min_score_must_be_finite(corpus) -> None:
    _, indexes = corpus
    searcher = Searcher.open(indexes["flat"], device="cpu")
    with pytest.raises(InputError, match="finite"):
        searcher.search_vectors(vectors(1, DIM, 9), 10, min_score=float("nan"))


def test_search_table_filters_too(corpus) -> None:
    _, indexes = corpus
    searcher = Searcher.open(indexes["ivf"], device="cpu")
    table = searcher.search_table(vectors(5, DIM, 2), 10, where="bucket < 10", min_score=-1.0)
    assert set(table.column("bucket").to_pylist()) <= set(range(10))


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf", "ivfpq"])
def test_an_exclusion_selector_composes_with_the_filter(corpus, kind) -> None:
    import faiss

    _, indexes = corpus
    searcher = Searcher.open(indexes[kind], device="cpu")
    query = vectors(4, DIM, 13)
    where = "bucket < 10"  # an exact scan on hnsw: the exclusion must hold there too
    first = {h.id for row in searcher.search_vectors(query, 10, where=where) for h in row}
    excluded = np.array(sorted(first), np.int64)
    searcher.exclusion = faiss.IDSelectorNot(faiss.IDSelectorBatch(excluded))
    again = {h.id for row in searcher.search_vectors(query, 10, where=where) for h in row}
    assert not again & first


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_an_exclusion_alone_applies_without_a_filter(corpus, kind) -> None:
    import faiss

    _, indexes = corpus
    searcher = Searcher.open(indexes[kind], device="cpu")
    query = vectors(1, DIM, 13)
    first = [h.id for h in searcher.search_vectors(query, 3)[0]]
    searcher.exclusion = faiss.IDSelectorNot(faiss.IDSelectorBatch(np.array(first, np.int64)))
    assert not {h.id for h in searcher.search_vectors(query, 3)[0]} & set(first)


def test_unknown_column_is_named_with_the_likely_one(corpus) -> None:
    _, indexes = corpus
    searcher = Searcher.open(indexes["flat"], device="cpu")
    with pytest.raises(InputError, match='column "bucket_no" not found .did you mean "bucket"'):
        searcher.search_vectors(vectors(1, DIM, 1), 5, where="bucket_no < 3")


def test_error_message_is_one_line(corpus) -> None:
    _, indexes = corpus
    searcher = Searcher.open(indexes["flat"], device="cpu")
    with pytest.raises(InputError) as caught:
        searcher.search_vectors(vectors(1, DIM, 1), 5, where="bucket < ")
    assert "\n" not in str(caught.value)


def test_a_value_that_is_no_condition_is_refused(corpus) -> None:
    _, indexes = corpus
    searcher = Searcher.open(indexes["flat"], device="cpu")
    with pytest.raises(InputError, match="not a condition"):
        searcher.matching("bucket")


def test_a_condition_cannot_read_files(corpus, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    _, indexes = corpus
    searcher = Searcher.open(indexes["flat"], device="cpu")
    with pytest.raises(InputError, match="disabled"):
        searcher.matching(f"(SELECT count(*) FROM read_csv('{secret}')) > 0")


def test_a_second_statement_is_refused(corpus) -> None:
    _, indexes = corpus
    searcher = Searcher.open(indexes["flat"], device="cpu")
    with pytest.raises(InputError, match="bad --where"):
        searcher.matching("bucket < 3; DROP TABLE x")
