"""The public helpers every lane shares: arrays -> dir, the NaN refusal, the model rule."""

from __future__ import annotations

import numpy as np
import pytest

from embedsearch.errors import FormatError, InputError, MismatchError
from embedsearch.store import (
    EmbeddingDir,
    iter_vector_batches,
    iter_vectors,
    open_embedding_dirs,
    require_same_model,
    write_embedding_dir,
)
from embedsearch.store.writer import ShardWriter


def _unit(n: int, dim: int = 4, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_write_embedding_dir_stores_normalised_rows_under_the_given_ids(tmp_path) -> None:
    write_embedding_dir(tmp_path / "e", 3 * _unit(5), ids=[10, 11, 12, 13, 14])
    ids, vectors = next(iter_vectors(tmp_path / "e"))
    assert ids.tolist() == [10, 11, 12, 13, 14]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)


def test_write_embedding_dir_appends_after_the_next_free_id(tmp_path) -> None:
    write_embedding_dir(tmp_path / "e", _unit(3))
    d = write_embedding_dir(tmp_path / "e", _unit(2, seed=1))
    ids = np.concatenate([i for i, _ in iter_vectors(d)])
    assert ids.tolist() == [0, 1, 2, 3, 4]


def test_write_embedding_dir_refuses_a_zero_row(tmp_path) -> None:
    vectors = _unit(3)
    vectors[1] = 0
    with pytest.raises(InputError, match="row 1"):
        write_embedding_dir(tmp_path / "e", vectors)


def test_write_embedding_dir_refuses_another_model(tmp_path) -> None:
    write_embedding_dir(tmp_path / "e", _unit(3), model="a")
    with pytest.raises(MismatchError):
        write_embedding_dir(tmp_path / "e", _unit(3), model="b")


def test_nan_vectors_are_refused_naming_the_dir(tmp_path) -> None:
    d = write_embedding_dir(tmp_path / "e", _unit(2))
    writer = ShardWriter(d, reserve_next_id=3)
    writer.add([2], ["x"], ["h"], np.full((1, 4), np.nan, dtype=np.float32))
    writer.close()
    with pytest.raises(FormatError, match=f"{tmp_path / 'e'} holds NaN"):
        list(iter_vector_batches(tmp_path / "e"))


def test_require_same_model_refuses_another_fingerprint(tmp_path) -> None:
    a = write_embedding_dir(tmp_path / "a", _unit(2), model="m", fingerprint="one")
    b = write_embedding_dir(tmp_path / "b", _unit(2), model="m", fingerprint="two")
    with pytest.raises(MismatchError, match="vectors of different models cannot be mixed"):
        require_same_model([a, b])


def test_require_same_model_refuses_another_dim(tmp_path) -> None:
    a = write_embedding_dir(tmp_path / "a", _unit(2, dim=4))
    with pytest.raises(MismatchError, match="dim 4, not 8"):
        require_same_model([a], fingerprint=a.fingerprint, dim=8)


def test_open_embedding_dirs_drops_a_dir_named_twice(tmp_path) -> None:
    write_embedding_dir(tmp_path / "a", _unit(2))
    dirs = open_embedding_dirs([tmp_path / "a", str(tmp_path / "a")])
    assert len(dirs) == 1
    assert isinstance(dirs[0], EmbeddingDir)


def test_open_embedding_dirs_refuses_a_folder_without_manifest(tmp_path) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(FormatError, match="is not an embedding dir"):
        open_embedding_dirs([tmp_path / "x"])
