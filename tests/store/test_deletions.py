"""Deleted rows: recorded in the manifest, skipped by every reader, ids never reused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embedsearch.store import EmbeddingDir, iter_vectors
from embedsearch.store.arrays import write_embedding_dir
from embedsearch.store.deletions import delete_rows, read_source_list
from embedsearch.store.reader import iter_batches, iter_vector_batches


def _dir(path, n=6):
    vectors = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
    sources = [f"/photos/p{i}.jpg" for i in range(n)]
    return write_embedding_dir(path, vectors, sources=sources)


def test_deleted_rows_are_skipped_by_iter_vectors(tmp_path) -> None:
    d = _dir(tmp_path / "e")
    d.record_deleted([1, 4])
    ids = np.concatenate([i for i, _ in iter_vectors(tmp_path / "e")])
    assert ids.tolist() == [0, 2, 3, 5]


def test_deleted_rows_are_skipped_by_iter_vector_batches(tmp_path) -> None:
    d = _dir(tmp_path / "e")
    d.record_deleted([0])
    sources = [s for b, _ in iter_vector_batches(d, ["source"]) for s in b.column(0).to_pylist()]
    assert "/photos/p0.jpg" not in sources


def test_deleted_rows_stay_readable_with_live_only_false(tmp_path) -> None:
    d = _dir(tmp_path / "e")
    d.record_deleted([2])
    ids = [r["id"] for b in iter_batches(d, ["id"], live_only=False) for r in b.to_pylist()]
    assert 2 in ids


def test_deletions_are_recorded_in_the_manifest(tmp_path) -> None:
    _dir(tmp_path / "e").record_deleted([3])
    manifest = json.loads((tmp_path / "e/.embedsearch/manifest.json").read_text())
    assert manifest["deleted_ids"] == [3]


def test_live_rows_leave_out_deleted_rows(tmp_path) -> None:
    _dir(tmp_path / "e").record_deleted([3, 5])
    assert EmbeddingDir.open(tmp_path / "e").live_rows == 4


def test_a_dir_without_deletions_has_no_deleted_ids_key(tmp_path) -> None:
    _dir(tmp_path / "e")
    manifest = json.loads((tmp_path / "e/.embedsearch/manifest.json").read_text())
    assert "deleted_ids" not in manifest


def test_deleting_twice_counts_once(tmp_path) -> None:
    d = _dir(tmp_path / "e")
    d.record_deleted([1])
    assert d.record_deleted([1]) == 0


def test_ids_of_deleted_rows_are_never_reused(tmp_path) -> None:
    _dir(tmp_path / "e", n=3).record_deleted([2])
    d = write_embedding_dir(tmp_path / "e", np.eye(4, dtype=np.float32)[:1])
    ids = [r["id"] for b in iter_batches(d, ["id"], live_only=False) for r in b.to_pylist()]
    assert ids == [0, 1, 2, 3]


def test_delete_rows_by_source_as_remove_txt_lists_it(tmp_path) -> None:
    d = _dir(tmp_path / "e")
    (tmp_path / "remove.txt").write_text("/photos/p1.jpg\n/photos/p2.jpg\n")
    result = delete_rows(d, sources=read_source_list(tmp_path / "remove.txt"))
    assert EmbeddingDir.open(d.path).deleted_ids == {1, 2}
    assert result.deleted == 2


def test_delete_rows_names_what_matched_nothing(tmp_path) -> None:
    d = _dir(tmp_path / "e")
    result = delete_rows(d, ids=[1, 99], sources=["/photos/none.jpg"])
    assert result.not_found == ["99", "/photos/none.jpg"]


def test_delete_rows_matches_a_relative_path_to_the_stored_absolute_one(
    tmp_path, monkeypatch
) -> None:
    vectors = np.eye(4, dtype=np.float32)[:2]
    d = write_embedding_dir(tmp_path / "e", vectors, sources=[str(tmp_path / "a.jpg"), "x"])
    monkeypatch.chdir(tmp_path)
    delete_rows(d, sources=["a.jpg"])
    assert EmbeddingDir.open(d.path).deleted_ids == {0}


def test_a_text_with_a_newline_matches_its_remove_txt_line(tmp_path) -> None:
    vectors = np.eye(4, dtype=np.float32)[:2]
    d = write_embedding_dir(tmp_path / "e", vectors, sources=["two\nlines", "one"], modality="text")
    delete_rows(d, sources=["two lines"])
    assert EmbeddingDir.open(d.path).deleted_ids == {0}


def test_delete_rows_counts_rows_deleted_before(tmp_path) -> None:
    d = _dir(tmp_path / "e")
    delete_rows(d, ids=[1])
    assert delete_rows(d, ids=[1, 2]).already_deleted == 1


def test_delete_rows_without_names_is_refused(tmp_path) -> None:
    from embedsearch.errors import InputError

    with pytest.raises(InputError, match="--ids"):
        delete_rows(_dir(tmp_path / "e"))
