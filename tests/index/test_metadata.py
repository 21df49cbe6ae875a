"""MetadataStore reads: a row a key in the asked order, null rows for keys not stored."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from embedsearch.index.metadata import MetadataStore, MetadataWriter


def _store(tmp_path, keys: list[int], files: int = 1) -> MetadataStore:
    names = []
    for number, part in enumerate(np.array_split(np.array(keys, np.int64), files)):
        name = f"meta-{number:05d}.arrow"
        writer = MetadataWriter(tmp_path / name)
        batch = pa.record_batch(
            {"id": pa.array(part), "source": pa.array([f"src{k}" for k in part])}
        )
        writer.write(part, 0, batch)
        writer.close()
        names.append(name)
    return MetadataStore(tmp_path, names)


@pytest.mark.parametrize(
    "keys, files",
    [
        (list(range(10, 20)), 1),
        ([10, 12, 13, 17, 19], 1),
        (list(range(19, 9, -1)), 1),
        (list(range(10, 20)), 2),
    ],
    ids=["dense", "gaps", "unordered", "two-files"],
)
def test_take_finds_stored_keys_and_gives_null_rows_for_others(tmp_path, keys, files) -> None:
    store = _store(tmp_path, keys, files)
    wanted = np.array([-1, 12, 9, 19, 20, 13, 12], np.int64)
    expected_found = np.isin(wanted, keys)
    np.testing.assert_array_equal(store.contains(wanted), expected_found)
    table = store.take(wanted)
    expected = [int(k) if ok else None for k, ok in zip(wanted, expected_found, strict=True)]
    assert table.column("key").to_pylist() == expected
    assert table.column("source").to_pylist() == [k if k is None else f"src{k}" for k in expected]


@pytest.mark.parametrize("batch_rows, expected_batches", [(1 << 20, 1), (25, 4)])
def test_writer_gathers_small_batches_into_few_large_ones(
    tmp_path, batch_rows, expected_batches
) -> None:
    writer = MetadataWriter(tmp_path / "meta-00000.arrow", batch_rows=batch_rows)
    for start in range(0, 100, 10):  # ten batches of ten rows, as an embedding dir streams them
        part = np.arange(start, start + 10, dtype=np.int64)
        writer.write(
            part,
            0,
            pa.record_batch({"id": pa.array(part), "source": pa.array([f"src{k}" for k in part])}),
        )
    writer.close()
    reader = pa.ipc.open_file(tmp_path / "meta-00000.arrow")
    assert reader.num_record_batches == expected_batches  # reads take from few, large pieces
    table = reader.read_all()
    assert table.column("key").to_pylist() == list(range(100))
    assert table.column("source").to_pylist() == [f"src{k}" for k in range(100)]
    store = MetadataStore(tmp_path, ["meta-00000.arrow"])
    taken = store.take(np.array([99, 3, 250, 40]))
    assert taken.column("source").to_pylist() == ["src99", "src3", None, "src40"]


def test_take_across_files_keeps_the_key_order_and_nulls_missing_columns(tmp_path) -> None:
    names = []
    for number, (part, extra) in enumerate([(np.arange(0, 5), None), (np.arange(5, 9), "caption")]):
        columns = {"id": pa.array(part), "source": pa.array([f"src{k}" for k in part])}
        if extra:
            columns[extra] = pa.array([f"cap{k}" for k in part])
        writer = MetadataWriter(tmp_path / f"meta-{number:05d}.arrow")
        writer.write(part, number, pa.record_batch(columns))
        writer.close()
        names.append(f"meta-{number:05d}.arrow")
    store = MetadataStore(tmp_path, names)
    table = store.take(np.array([7, 2, 42, 5, 0, 8]))
    assert table.column_names == ["key", "dir", "id", "source", "caption"]
    assert table.column("source").to_pylist() == ["src7", "src2", None, "src5", "src0", "src8"]
    assert table.column("caption").to_pylist() == ["cap7", None, None, "cap5", None, "cap8"]
    assert store.take(np.array([-1, 99])).column("key").null_count == 2
    assert store.columns_of_dirs([0, 1]) == {0: ["source"], 1: ["source", "caption"]}


def test_flush_writes_the_gathered_rows_now(tmp_path) -> None:
    writer = MetadataWriter(tmp_path / "meta-00000.arrow")
    first, second = np.arange(0, 10, dtype=np.int64), np.arange(10, 15, dtype=np.int64)
    writer.write(
        first,
        0,
        pa.record_batch({"id": pa.array(first), "source": pa.array([f"s{k}" for k in first])}),
    )
    writer.flush()  # what the build does when the next embedding dir starts
    writer.write(
        second,
        0,
        pa.record_batch({"id": pa.array(second), "source": pa.array([f"s{k}" for k in second])}),
    )
    writer.close()
    reader = pa.ipc.open_file(tmp_path / "meta-00000.arrow")
    assert [reader.get_batch(i).num_rows for i in range(reader.num_record_batches)] == [10, 5]
