"""Searcher: hits, colliding ids across dirs, relocation, search by id, fresh-query recall."""

from __future__ import annotations

import shutil

import faiss
import numpy as np
import pytest

from embedsearch.errors import FormatError, InputError
from embedsearch.index import Hit, Searcher, build_index, layout


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
    assert s.ntotal == 1600
    assert len(set(s.store.keys.tolist())) == 1600
    for row in (0, 7, 799):
        top_b = s.search_vector(b[row], k=1)[0]
        top_a = s.search_vector(a[row], k=1)[0]
        assert (top_b.id, top_b.dir, top_b.source) == (row, 1, f"b/{row}.png")
        assert (top_a.id, top_a.dir, top_a.source) == (row, 0, f"a/{row}.png")
        assert top_b.score == pytest.approx(1.0, abs=1e-5)
        assert top_b.metadata["label"] == row % 5


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
        assert all(
            h.metadata == {"content_hash": f"h{h.id}", "label": h.id % 5} and h.dir == 0
            for h in hits
        )
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
    assert all(
        h.source == f"t/{h.id}.png" and h.metadata["label"] == h.id % 5
        for hits in batch
        for h in hits
    )


@pytest.mark.parametrize("dirs", [1, 2], ids=["one-metadata-file", "several-files"])
def test_missing_keys_anywhere_are_skipped_and_ranks_close_up(two_dirs, tmp_path, dirs) -> None:
    """Both lookup paths (one metadata file: column gathers; several: row dicts) skip -1 and
    unknown keys wherever they sit, and give id, dir, source and metadata of the right row."""
    build_index(list(two_dirs[:dirs]), tmp_path / "idx", kind="flat")
    s = Searcher.open(tmp_path / "idx")
    last = layout.make_keys(np.array([5]), dirs - 1)[0]  # a row of the last dir
    keys = np.array([[7, -1, last], [123456, 2, -1]], np.int64)
    scores = np.array([[0.9, 0.8, 0.7], [0.6, 0.5, 0.4]], np.float32)
    hits = s._hits(scores, keys)
    assert [[(h.rank, h.id, h.dir, h.score) for h in q] for q in hits] == [
        [(1, 7, 0, pytest.approx(0.9)), (2, 5, dirs - 1, pytest.approx(0.7))],
        [(1, 2, 0, pytest.approx(0.5))],
    ]
    prefix = "ab"[dirs - 1]
    assert [h.source for h in hits[0]] == ["a/7.png", f"{prefix}/5.png"]
    assert hits[0][1].metadata == {"content_hash": f"h{5}", "label": 0}


def rows_of(corpus: np.ndarray, row: int) -> int:
    """Nearest other row of ``corpus[row]``."""
    scores = corpus @ corpus[row]
    scores[row] = -np.inf
    return int(np.argmax(scores))


def test_a_copied_index_answers_without_its_embedding_dirs(two_dirs, tmp_path) -> None:
    dir_a, dir_b, _, b = two_dirs
    build_index([dir_a, dir_b], tmp_path / "idx", kind="ivf", target_recall=0.9)
    before = [
        (h.id, h.dir, h.source) for h in Searcher.open(tmp_path / "idx").search_id(9, k=5, dir=1)
    ]
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


def test_search_leaves_the_garbage_collector_as_it_found_it(two_dirs, tmp_path) -> None:
    import gc

    dir_a, _, a, _ = two_dirs
    build_index([dir_a], tmp_path / "idx", kind="flat")
    s = Searcher.open(tmp_path / "idx")
    assert gc.isenabled()
    s.search_vectors(a[:3], k=2)
    assert gc.isenabled()  # paused only while the hits are made
    gc.disable()
    try:
        s.search_vectors(a[:3], k=2)
        assert not gc.isenabled()  # a caller that turned it off keeps it off
    finally:
        gc.enable()


def test_search_table_holds_the_same_hits_as_search_vectors(tmp_path, vectors, write_emb) -> None:
    """Two dirs with different metadata columns; b's ``score`` column must not shadow the hit's
    score."""
    a, b = vectors(600, 32, 1), vectors(600, 32, 2)
    write_emb(tmp_path / "a", a, prefix="a")
    write_emb(
        tmp_path / "b",
        b,
        prefix="b",
        columns={"score": lambda i: f"s{i}", "caption": lambda i: f"c{i}"},
    )
    build_index([tmp_path / "a", tmp_path / "b"], tmp_path / "idx", kind="flat")
    s = Searcher.open(tmp_path / "idx")
    queries = np.concatenate([a[:3], b[:3]]) + 0.02
    table = s.search_table(queries, k=4)
    hits = s.search_vectors(queries, k=4)
    assert table.num_rows == 24
    assert table.column_names[:6] == ["query", "rank", "id", "dir", "score", "source"]
    rows = table.to_pylist()
    expected = [h.to_dict() | {"query": q} for q, hs in enumerate(hits) for h in hs]
    for row, want in zip(rows, expected, strict=False):
        assert {k: row[k] for k in ("query", "rank", "id", "dir", "source", "label")} == {
            k: want[k] for k in ("query", "rank", "id", "dir", "source", "label")
        }
        assert row["score"] == pytest.approx(want["score"], abs=1e-6)
        # the metadata "score" of dir b is renamed, in both forms; dir a's rows have none
        assert (
            row["input_score"]
            == want.get("input_score")
            == (f"s{row['id']}" if row["dir"] == 1 else None)
        )
        assert row["caption"] == (f"c{row['id']}" if row["dir"] == 1 else None)
    assert [(r["id"], r["dir"]) for r in rows if r["rank"] == 1] == [
        (0, 0),
        (1, 0),
        (2, 0),
        (0, 1),
        (1, 1),
        (2, 1),
    ]
