"""Deleted and superseded rows leave an index on --append: removed, or excluded at search time."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embedsearch.errors import FormatError, InputError
from embedsearch.index import Searcher, append_index, build_index
from embedsearch.index.exclusions import EXCLUDED_FILE, REBUILD_SHARE
from embedsearch.index.layout import read_info
from embedsearch.store import EmbeddingDir

KINDS = ["flat", "hnsw", "ivf", "ivfsq", "ivfpq"]
CANNOT_REMOVE = {"hnsw", "ivfpq"}  # HNSW graphs and refined PQ: faiss has no remove_ids


@pytest.fixture
def corpus(tmp_path, vectors, write_emb):
    x = vectors(400, 32, 0)
    write_emb(tmp_path / "e", x)
    return tmp_path / "e", x


def _appended(tmp_path, corpus, kind, deleted=(7,), **build):
    path, x = corpus
    out = tmp_path / f"idx-{kind}"
    build_index([path], out, kind=kind, target_recall=0.9, **build)
    EmbeddingDir.open(path).record_deleted(list(deleted))
    append_index([path], out, target_recall=0.9)
    return out, x


@pytest.mark.parametrize("kind", KINDS)
def test_a_deleted_row_is_not_found_after_append(tmp_path, corpus, kind) -> None:
    out, x = _appended(tmp_path, corpus, kind)
    assert 7 not in [h.id for h in Searcher.open(out).search_vector(x[7], k=5)]


@pytest.mark.parametrize("kind", KINDS)
def test_a_query_still_gets_k_hits_after_deletions(tmp_path, corpus, kind) -> None:
    out, x = _appended(tmp_path, corpus, kind, deleted=range(0, 400, 3))
    assert len(Searcher.open(out).search_vector(x[3], k=10)) == 10


@pytest.mark.parametrize("kind", sorted(set(KINDS) - CANNOT_REMOVE))
def test_kinds_that_can_remove_rows_drop_them(tmp_path, corpus, kind) -> None:
    out, _ = _appended(tmp_path, corpus, kind, deleted=[1, 2])
    assert read_info(out).ntotal == 398


@pytest.mark.parametrize("kind", sorted(CANNOT_REMOVE))
def test_kinds_that_cannot_remove_rows_count_the_excluded_ones(tmp_path, corpus, kind) -> None:
    out, _ = _appended(tmp_path, corpus, kind, deleted=[1, 2])
    assert read_info(out).excluded_rows == 2


@pytest.mark.parametrize("kind", sorted(CANNOT_REMOVE))
def test_excluded_rows_survive_a_second_append(tmp_path, corpus, kind) -> None:
    out, x = _appended(tmp_path, corpus, kind)
    append_index([corpus[0]], out, target_recall=0.9)
    assert 7 not in [h.id for h in Searcher.open(out).search_vector(x[7], k=5)]


def test_a_second_append_does_not_count_removed_rows_again(tmp_path, corpus) -> None:
    out, _ = _appended(tmp_path, corpus, "flat")
    append_index([corpus[0]], out, target_recall=0.9)
    assert read_info(out).sources[0].indexed_rows == 399


def test_an_excluded_share_past_the_limit_asks_for_a_rebuild(tmp_path, corpus) -> None:
    many = range(int(400 * REBUILD_SHARE) + 8)
    out, _ = _appended(tmp_path, corpus, "hnsw", deleted=many)
    assert any("rebuild" in note for note in read_info(out).notes)


def test_a_few_excluded_rows_do_not_ask_for_a_rebuild(tmp_path, corpus) -> None:
    out, _ = _appended(tmp_path, corpus, "hnsw", deleted=[3])
    assert not any("rebuild" in note for note in read_info(out).notes)


def test_recall_is_measured_as_searches_see_the_index(tmp_path, corpus) -> None:
    out, _ = _appended(tmp_path, corpus, "hnsw", deleted=range(0, 400, 4))
    assert read_info(out).recall.recall_at_k >= 0.9


@pytest.mark.parametrize("kind", KINDS)
def test_a_centred_index_excludes_deleted_rows(tmp_path, corpus, kind) -> None:
    out, x = _appended(tmp_path, corpus, kind, centre="yes")
    assert 7 not in [h.id for h in Searcher.open(out).search_vector(x[7], k=5)]


def test_a_damaged_exclusion_list_is_refused(tmp_path, corpus) -> None:
    out, _ = _appended(tmp_path, corpus, "hnsw")
    keys = np.load(out / EXCLUDED_FILE)
    np.save(out / EXCLUDED_FILE, keys + 1)
    with pytest.raises(FormatError, match="corrupt"):
        Searcher.open(out)


def test_the_excluded_count_is_in_index_json(tmp_path, corpus) -> None:
    out, _ = _appended(tmp_path, corpus, "hnsw", deleted=[4, 5, 6])
    assert json.loads((out / "index.json").read_text())["excluded_rows"] == 3


def test_deletions_of_another_indexed_dir_are_applied_too(tmp_path, vectors, write_emb) -> None:
    a, b = vectors(300, 32, 1), vectors(300, 32, 2)
    write_emb(tmp_path / "a", a, prefix="a")
    write_emb(tmp_path / "b", b, prefix="b")
    out = tmp_path / "idx"
    build_index([tmp_path / "a", tmp_path / "b"], out, kind="flat")
    EmbeddingDir.open(tmp_path / "a").record_deleted([9])
    append_index([tmp_path / "b"], out)
    assert (9, 0) not in [(h.id, h.dir) for h in Searcher.open(out).search_vector(a[9], k=5)]


def test_a_build_leaves_out_deleted_rows(tmp_path, corpus) -> None:
    path, x = corpus
    EmbeddingDir.open(path).record_deleted([7])
    build_index([path], tmp_path / "idx", kind="flat")
    assert 7 not in [h.id for h in Searcher.open(tmp_path / "idx").search_vector(x[7], k=5)]


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_a_query_by_a_deleted_id_is_refused_by_name(tmp_path, corpus, kind) -> None:
    out, _ = _appended(tmp_path, corpus, kind)
    with pytest.raises(InputError, match="id 7 .*was deleted or replaced"):
        Searcher.open(out).search_id(7, k=5)


def test_an_excluded_id_is_refused_when_its_embedding_dir_is_gone(tmp_path, corpus) -> None:
    import shutil

    out, _ = _appended(tmp_path, corpus, "hnsw")
    shutil.rmtree(corpus[0])
    with pytest.raises(InputError, match="id 7 .*was deleted or replaced"):
        Searcher.open(out).search_id(7, k=5)


def test_info_shows_the_excluded_rows_of_an_index(tmp_path, corpus) -> None:
    from embedsearch.index.describe import describe_index_dir

    out, _ = _appended(tmp_path, corpus, "hnsw", deleted=[1, 2])
    assert describe_index_dir(out)["excluded rows"] == 2
