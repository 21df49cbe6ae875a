"""``import``: vectors made elsewhere become an embedding dir; bad rows refused by number."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedsearch.data.vector_import import import_vectors
from embedsearch.errors import InputError, ModelError
from embedsearch.store import EmbeddingDir, iter_vectors
from embedsearch.store.reader import iter_batches

MODEL = "external:demo"


def _x(n=20, dim=8, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def _npy(tmp_path, x, names=True):
    np.save(tmp_path / "v.npy", x)
    if names:
        (tmp_path / "names.txt").write_text("".join(f"/p/{i}.jpg\n" for i in range(len(x))))
    return tmp_path / "v.npy"


def _rows(out) -> list[dict]:
    return [r for b in iter_batches(out, ["id", "source"]) for r in b.to_pylist()]


def test_npy_rows_keep_their_order_and_values(tmp_path) -> None:
    x = _x()
    import_vectors(_npy(tmp_path, x), out=tmp_path / "e", model=MODEL)
    _, stored = next(iter_vectors(tmp_path / "e"))
    assert np.array_equal(stored, x)


def test_npy_rows_are_named_by_the_sources_file(tmp_path) -> None:
    path = _npy(tmp_path, _x(3))
    import_vectors(path, out=tmp_path / "e", model=MODEL, sources_file=tmp_path / "names.txt")
    assert [r["source"] for r in _rows(tmp_path / "e")] == ["/p/0.jpg", "/p/1.jpg", "/p/2.jpg"]


def test_the_ids_file_is_kept_as_input_id(tmp_path) -> None:
    np.save(tmp_path / "ids.npy", np.array([70, 71, 72]))
    import_vectors(
        _npy(tmp_path, _x(3)), out=tmp_path / "e", model=MODEL, ids_file=tmp_path / "ids.npy"
    )
    got = [r["input_id"] for b in iter_batches(tmp_path / "e", ["input_id"]) for r in b.to_pylist()]
    assert got == [70, 71, 72]


def test_a_sources_file_of_another_length_is_refused(tmp_path) -> None:
    path = _npy(tmp_path, _x(3), names=False)
    (tmp_path / "names.txt").write_text("a\nb\n")
    with pytest.raises(InputError, match="fewer lines"):
        import_vectors(path, out=tmp_path / "e", model=MODEL, sources_file=tmp_path / "names.txt")


def test_nan_is_refused_with_its_row_number(tmp_path) -> None:
    x = _x()
    x[13, 2] = np.nan
    with pytest.raises(InputError, match="row 13 holds NaN"):
        import_vectors(_npy(tmp_path, x), out=tmp_path / "e", model=MODEL)


def test_inf_is_refused_with_its_row_number(tmp_path) -> None:
    x = _x()
    x[4, 0] = np.inf
    with pytest.raises(InputError, match="row 4 holds NaN or infinite"):
        import_vectors(_npy(tmp_path, x), out=tmp_path / "e", model=MODEL)


def test_a_refused_input_writes_nothing(tmp_path) -> None:
    x = _x(5000)
    x[4900, 0] = np.nan
    with pytest.raises(InputError):
        import_vectors(_npy(tmp_path, x), out=tmp_path / "e", model=MODEL)
    assert not (tmp_path / "e").exists()


def test_a_wrong_dim_is_refused(tmp_path) -> None:
    with pytest.raises(InputError, match="8 values, not --dim 16"):
        import_vectors(_npy(tmp_path, _x()), out=tmp_path / "e", model=MODEL, dim=16)


def _parquet(tmp_path, vectors, **columns) -> object:
    table = pa.table({"embedding": vectors, **columns})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=4)
    return tmp_path / "t.parquet"


def test_ragged_rows_of_a_parquet_table_are_refused_with_the_row_number(tmp_path) -> None:
    vectors = [[0.1, 0.2, 0.3]] * 6 + [[0.1, 0.2]] + [[0.1, 0.2, 0.3]]
    with pytest.raises(InputError, match="row 7 has 2 values"):
        import_vectors(_parquet(tmp_path, vectors), out=tmp_path / "e", model=MODEL)


def test_parquet_metadata_columns_are_carried(tmp_path) -> None:
    path = _parquet(tmp_path, list(_x(3)), path=["a", "b", "c"], label=[1, 2, 3])
    import_vectors(path, out=tmp_path / "e", model=MODEL, source_col="path")
    rows = [r for b in iter_batches(tmp_path / "e", ["source", "label"]) for r in b.to_pylist()]
    assert rows[1] == {"source": "b", "label": 2}


def test_a_table_without_a_vector_column_names_the_columns(tmp_path) -> None:
    pq.write_table(pa.table({"a": [1], "b": ["x"]}), tmp_path / "t.parquet")
    with pytest.raises(InputError, match="--vector-col.*a, b"):
        import_vectors(tmp_path / "t.parquet", out=tmp_path / "e", model=MODEL)


def test_csv_vectors_written_as_text_lists_are_read(tmp_path) -> None:
    (tmp_path / "t.csv").write_text('source,vector\na,"[1, 0]"\nb,"[0, 1]"\n')
    import_vectors(tmp_path / "t.csv", out=tmp_path / "e", model=MODEL)
    _, stored = next(iter_vectors(tmp_path / "e"))
    assert stored.tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_a_csv_cell_that_is_not_a_vector_is_refused_with_its_row(tmp_path) -> None:
    (tmp_path / "t.csv").write_text('source,vector\na,"[1, 0]"\nb,"[0, oops]"\n')
    with pytest.raises(InputError, match="row 2 is not a list of numbers"):
        import_vectors(tmp_path / "t.csv", out=tmp_path / "e", model=MODEL)


def test_another_embedding_dir_is_imported_with_its_sources(tmp_path) -> None:
    from embedsearch.store.arrays import write_embedding_dir

    write_embedding_dir(tmp_path / "a", _x(4), sources=["w", "x", "y", "z"], model="simclr:x")
    import_vectors(tmp_path / "a", out=tmp_path / "e", model=MODEL)
    assert [r["source"] for r in _rows(tmp_path / "e")] == ["w", "x", "y", "z"]


def test_normalize_is_recorded(tmp_path) -> None:
    import_vectors(_npy(tmp_path, _x()), out=tmp_path / "e", model=MODEL, normalize=True)
    assert EmbeddingDir.open(tmp_path / "e").manifest.normalized is True


def test_vectors_stored_as_given_are_recorded_as_not_normalised(tmp_path) -> None:
    import_vectors(_npy(tmp_path, _x()), out=tmp_path / "e", model=MODEL)
    manifest = json.loads((tmp_path / "e/.embedsearch/manifest.json").read_text())
    assert manifest["normalized"] is False


def test_unit_vectors_stored_as_given_are_recorded_as_normalised(tmp_path) -> None:
    x = _x()
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    import_vectors(_npy(tmp_path, x), out=tmp_path / "e", model=MODEL)
    assert EmbeddingDir.open(tmp_path / "e").manifest.normalized is True


def test_a_zero_row_cannot_be_normalised(tmp_path) -> None:
    x = _x()
    x[6] = 0
    with pytest.raises(InputError, match="row 6 is all zeros"):
        import_vectors(_npy(tmp_path, x), out=tmp_path / "e", model=MODEL, normalize=True)


def test_a_rerun_imports_nothing_twice(tmp_path) -> None:
    path = _npy(tmp_path, _x())
    import_vectors(path, out=tmp_path / "e", model=MODEL, sources_file=tmp_path / "names.txt")
    again = import_vectors(
        path, out=tmp_path / "e", model=MODEL, sources_file=tmp_path / "names.txt"
    )
    assert again.imported == 0


def test_a_changed_vector_supersedes_the_old_row(tmp_path) -> None:
    x = _x(3)
    import_vectors(
        _npy(tmp_path, x), out=tmp_path / "e", model=MODEL, sources_file=tmp_path / "names.txt"
    )
    x[1] += 1
    import_vectors(
        _npy(tmp_path, x), out=tmp_path / "e", model=MODEL, sources_file=tmp_path / "names.txt"
    )
    assert [r["id"] for r in _rows(tmp_path / "e")] == [0, 2, 3]


def test_a_model_that_is_not_an_external_label_is_refused(tmp_path) -> None:
    with pytest.raises(InputError, match="external:NAME"):
        import_vectors(_npy(tmp_path, _x()), out=tmp_path / "e", model="simclr:resnet18")


def test_an_external_label_cannot_be_loaded_as_a_model() -> None:
    from embedsearch.encoders import load_encoder

    with pytest.raises(ModelError, match="--id or --vector"):
        load_encoder("external:demo")


def test_a_big_npy_is_read_a_block_at_a_time(tmp_path, monkeypatch) -> None:
    import embedsearch.data.vector_files as vector_files

    seen = []
    original = vector_files.check_block
    monkeypatch.setattr(
        "embedsearch.data.vector_import.check_block",
        lambda v, *a: (seen.append(len(v)), original(v, *a)),
    )
    import_vectors(_npy(tmp_path, _x(20_000)), out=tmp_path / "e", model=MODEL)
    assert max(seen) == vector_files.BLOCK_ROWS
