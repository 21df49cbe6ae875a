"""Searcher: hits, colliding ids across dirs, relocation, search by id, fresh-query recall."""

from __future__ import annotations

import shutil

import faiss
import numpy as np
import pytest

from embedsearch.errors import FormatError, InputError
from embedsearch.index import Hit, Searcher, build_index


@pytest.fixture
def two_dirs(tmp_path, vectors, write_emb):
    """Two embedding dirs whose ids collide (both 0..799), with different vectors and sources."""
    a, b = vectors(800, 32, 1), vectors(800, 32, 2)
    write_emb(tmp_path / "a", a, prefix="a")
    write_emb(tmp_path / "b", b, prefix="b")
    return tmp_path / "a", tmp_path / "b", a, b


def test_colliding_ids_stay_distinct_and_name_the_right_source(two_dirs, tmp_path) -> None:
    dir_a, dir_b, a, b = two_dirs
    build_index([dir_a, dir_b], tmp_path / "idx", kind="flat")
    s = Searcher.open(tmp_path / "idx")
    assert s.ntotal == 1600 and len(set(s.store.keys.tolist())) == 1600
    for row in (0, 7, 799):
        top_b = s.search_vector(b[row], k=1)[0]
        top_a = s.search_vector(a[row], k=1)[0]
        assert (top_b.id, top_b.dir, top_b.source) == (row, 1, f"b/{row}.png")
        assert (top_a.id, top_a.dir, top_a.source) == (row, 0, f"a/{row}.png")
        assert top_b.score == pytest.approx(1.0, abs=1e-5) and top_b.metadata["label"] == row % 5


def test_hits_match_exact_search_and_batch_forms_agree(two_dirs, tmp_path) -> None:
    dir_a, _, a, _ = two_dirs
    build_index([dir_a], tmp_path / "idx", kind="flat")
    s = Searcher.open(tmp_path / "idx")
    queries = a[:5] + 0.05
    scores, rows = faiss.knn(queries, a, 4, metric=faiss.METRIC_INNER_PRODUCT)
    batch = s.search_vectors(queries, k=4)
    for q, hits in enumerate(batch):
        assert [h.rank for h in hits] == [1, 2, 3, 4]
        assert [h.id for h in hits] == rows[q].tolist()
        assert np.allclose([h.score for h in hits], scores[q], atol=1e-5)
        assert all(isinstance(h, Hit) and h.source == f"a/{h.id}.png" for h in hits)
        assert all(h.metadata == {"content_hash": f"h{h.id}", "label": h.id % 5} and h.dir == 0 for h in hits)
        assert [h.id for h in s.search_vector(queries[q], k=4)] == rows[q].tolist()
    assert [h.id for h in s.search_id(3, k=2)] == [3, rows_of(a, 3)]
    assert [[h.id for h in hits] for hits in s.search_ids([3, 4], k=1)] == [[3], [4]]


def test_fewer_rows_than_k_give_only_the_real_hits(tmp_path, vectors, write_emb) -> None:
    corpus = vectors(3, 32, 4)
    write_emb(tmp_path / "t", corpus, prefix="t")
    build_index([tmp_path / "t"], tmp_path / "idx", kind="flat")
    s = Searcher.open(tmp_path / "idx")
    batch = s.search_vectors(corpus[:2], k=5)  # faiss pads with key -1: those slots are skipped
    assert [[h.rank for h in hits] for hits in batch] == [[1, 2, 3], [1, 2, 3]]
    assert [hits[0].id for hits in batch] == [0, 1]
    assert all(h.source == f"t/{h.id}.png" and h.metadata["label"] == h.id % 5 for hits in batch for h in hits)


def rows_of(corpus: np.ndarray, row: int) -> int:
    """Nearest other row of ``corpus[row]``."""
    scores = corpus @ corpus[row]
    scores[row] = -np.inf
    return int(np.argmax(scores))


def test_a_copied_index_answers_without_its_embedding_dirs(two_dirs, tmp_path) -> None:
    dir_a, dir_b, _, b = two_dirs
    build_index([dir_a, dir_b], tmp_path / "idx", kind="ivf", target_recall=0.9)
    before = [(h.id, h.dir, h.source) for h in Searcher.open(tmp_path / "idx").search_id(9, k=5, dir=1)]
    shutil.copytree(tmp_path / "idx", tmp_path / "elsewhere" / "moved")
    shutil.rmtree(tmp_path / "idx")
    shutil.rmtree(dir_a)
    shutil.rmtree(dir_b)
    s = Searcher.open(tmp_path / "elsewhere" / "moved")
    hit = s.search_vector(b[9], k=1)[0]
    assert (hit.id, hit.dir, hit.source, hit.metadata["label"]) == (9, 1, "b/9.png", 4)
    # by id: the vector now comes from the index itself (IVF-flat stores it exactly)
    after = [(h.id, h.dir, h.source) for h in s.search_id(9, k=5, dir=1)]
    assert after == before


def test_bad_queries_and_dirs_are_one_line_errors(two_dirs, tmp_path) -> None:
    dir_a, *_ = two_dirs
    build_index([dir_a], tmp_path / "idx", kind="flat")
    s = Searcher.open(tmp_path / "idx")
    with pytest.raises(InputError, match="dim 8"):
        s.search_vector(np.ones(8, np.float32))
    with pytest.raises(InputError, match="NaN"):
        s.search_vector(np.full(32, np.nan, np.float32))
    with pytest.raises(InputError, match="not in the index"):
        s.search_id(123_456)
    with pytest.raises(FormatError, match="not an index dir"):
        Searcher.open(dir_a)
    with pytest.raises(FormatError, match="does not exist"):
        Searcher.open(tmp_path / "nope")
