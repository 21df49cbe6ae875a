"""ShardWriter streams row groups: bounded buffers, exact shard sizes, copies of callers' arrays"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq

from embedsearch.store import EmbeddingDir, iter_vectors
from embedsearch.store.writer import ShardWriter

DIM = 4


def _open(path):
    return EmbeddingDir.create_or_open(
        path, model="m", model_options={}, fingerprint="fp", modality="image", dim=DIM, source="src"
    )


def _add_batches(writer: ShardWriter, sizes: list[int], vectors: np.ndarray) -> None:
    start = 0
    for size in sizes:
        ids = list(range(start, start + size))
        writer.add(
            ids,
            [f"s{i}" for i in ids],
            [f"h{i}" for i in ids],
            vectors[start : start + size],
            {"label": [i % 3 for i in ids]},
        )
        start += size


def test_rows_stream_into_row_groups_and_shards_split_exactly(tmp_path) -> None:
    vectors = np.random.default_rng(0).normal(size=(23, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)  # readers refuse other norms
    writer = ShardWriter(_open(tmp_path / "e"), reserve_next_id=23, shard_rows=10, row_group_rows=4)
    _add_batches(writer, [3, 5, 1, 7, 4, 3], vectors)
    # before close, only full shards are published; the rest sits in the open shard or the buffer
    assert len(writer.written_shards) == 2
    writer.close()

    manifest = json.loads((tmp_path / "e" / ".embedsearch" / "manifest.json").read_text())
    assert [s["rows"] for s in manifest["shards"]] == [10, 10, 3]
    assert [(s["min_id"], s["max_id"]) for s in manifest["shards"]] == [(0, 9), (10, 19), (20, 22)]
    groups = [
        pq.ParquetFile(tmp_path / "e" / s["file"]).metadata.num_row_groups
        for s in manifest["shards"]
    ]
    assert groups == [3, 3, 1]  # 4 + 4 + 2 rows, never more than row_group_rows
    ids, got = zip(*iter_vectors(tmp_path / "e", batch_rows=7), strict=False)
    assert np.concatenate(ids).tolist() == list(range(23))
    np.testing.assert_array_equal(np.concatenate(got), vectors)
    labels = (
        pq.read_table(tmp_path / "e" / manifest["shards"][1]["file"]).column("label").to_pylist()
    )
    assert labels == [i % 3 for i in range(10, 20)]
    assert not list((tmp_path / "e").glob(".part.*.tmp"))


def test_buffered_vectors_are_copies_not_views_of_the_callers_array(tmp_path) -> None:
    # embed reuses nothing, but a view would pin the model's output tensor until the row group is
    # written
    vectors = np.full((5, DIM), 0.5, dtype=np.float32)  # unit length: readers refuse others
    writer = ShardWriter(_open(tmp_path / "e"), reserve_next_id=5, row_group_rows=100)
    _add_batches(writer, [5], vectors)
    vectors[:] = -1.0  # the caller's buffer changes before anything is written
    writer.close()
    _, got = next(iter(iter_vectors(tmp_path / "e")))
    np.testing.assert_array_equal(got, np.full((5, DIM), 0.5, dtype=np.float32))


def test_an_interrupted_writer_publishes_nothing_of_its_open_shard(tmp_path) -> None:
    d = _open(tmp_path / "e")
    writer = ShardWriter(d, reserve_next_id=9, shard_rows=100, row_group_rows=2)
    _add_batches(writer, [9], np.zeros((9, DIM), dtype=np.float32))
    assert list(
        (tmp_path / "e").glob(".part.*.tmp")
    )  # row groups are on disk under a temporary name
    manifest = json.loads((tmp_path / "e" / ".embedsearch" / "manifest.json").read_text())
    assert manifest["shards"] == []  # but nothing counts until the shard is committed


def test_abort_removes_the_open_shard_and_keeps_committed_ones(tmp_path) -> None:
    d = _open(tmp_path / "e")
    writer = ShardWriter(d, reserve_next_id=11, shard_rows=4, row_group_rows=2)
    _add_batches(
        writer, [11], np.zeros((11, DIM), dtype=np.float32)
    )  # two shards committed, one open
    assert list((tmp_path / "e").glob(".part.*.tmp"))
    writer.abort()
    assert not list((tmp_path / "e").glob(".part.*.tmp"))
    manifest = json.loads((tmp_path / "e" / ".embedsearch" / "manifest.json").read_text())
    assert [s["rows"] for s in manifest["shards"]] == [4, 4]


def test_a_metadata_column_empty_in_the_first_batch_takes_later_values(tmp_path) -> None:
    writer = ShardWriter(_open(tmp_path / "e"), reserve_next_id=4, row_group_rows=100)
    vectors = np.full((2, DIM), 0.5, dtype=np.float32)
    writer.add([0, 1], ["a", "b"], ["ha", "hb"], vectors, {"caption": [None, None]})
    writer.add([2, 3], ["c", "d"], ["hc", "hd"], vectors, {"caption": ["a cat", None]})
    writer.close()
    table = pq.read_table(tmp_path / "e" / "part-00000.parquet")
    assert table.column("caption").to_pylist() == [None, None, "a cat", None]


def test_commit_seconds_commits_before_the_shard_is_full(tmp_path) -> None:
    writer = ShardWriter(
        _open(tmp_path / "e"), reserve_next_id=9, shard_rows=1000, commit_seconds=1e-9
    )
    _add_batches(writer, [3, 3, 3], np.full((9, DIM), 0.5, dtype=np.float32))
    # every add found the interval passed: three commits, none waiting for close()
    assert len(writer.written_shards) == 3
