"""Damaged shards and vectors are refused by name, shown by `info`, and repaired by a rerun."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedsearch.errors import FormatError
from embedsearch.info import describe_embedding_dir
from embedsearch.store import EmbeddingDir, iter_vectors, write_embedding_dir
from embedsearch.store.embedding_dir import DAMAGED
from embedsearch.store.writer import ShardWriter


def _unit(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _dir(path: Path, n: int = 60, shard_rows: int = 20) -> EmbeddingDir:
    return write_embedding_dir(path, _unit(n), model="m", shard_rows=shard_rows)


def flip_middle(path: Path, count: int = 64) -> None:
    """Invert ``count`` bytes in the middle of the file (what a bad disk or copy does)."""
    data = bytearray(path.read_bytes())
    start = len(data) // 2 - count // 2
    data[start : start + count] = bytes(b ^ 0xFF for b in data[start : start + count])
    path.write_bytes(bytes(data))


def test_a_shard_with_flipped_bytes_is_refused_by_name(tmp_path: Path) -> None:
    d = _dir(tmp_path / "e")
    flip_middle(d.path / "part-00001.parquet")
    with pytest.raises(FormatError, match=r"part-00001.parquet is unusable \(checksum mismatch"):
        list(iter_vectors(d.path))


def test_a_deleted_shard_is_refused_by_name(tmp_path: Path) -> None:
    d = _dir(tmp_path / "e")
    (d.path / "part-00002.parquet").unlink()
    with pytest.raises(FormatError, match=r"part-00002.parquet is unusable \(missing"):
        list(iter_vectors(d.path))


def test_vectors_that_are_not_unit_length_are_refused(tmp_path: Path) -> None:
    d = _dir(tmp_path / "e", n=5)
    writer = ShardWriter(d, reserve_next_id=10)  # bypasses write_embedding_dir's normalising
    writer.add([5, 6], ["a", "b"], ["ha", "hb"], 3 * _unit(2, seed=1))
    writer.close()
    with pytest.raises(FormatError, match=r"not unit-length vectors \(ids \[5, 6\]\)"):
        list(iter_vectors(d.path))


def test_info_lists_the_damaged_shard(tmp_path: Path) -> None:
    d = _dir(tmp_path / "e")
    flip_middle(d.path / "part-00000.parquet")
    facts = describe_embedding_dir(EmbeddingDir.open(d.path))
    assert facts["damaged shards"].startswith("part-00000.parquet (checksum mismatch")


def test_dropping_damaged_shards_keeps_the_rest_readable(tmp_path: Path) -> None:
    d = _dir(tmp_path / "e")
    flip_middle(d.path / "part-00001.parquet")
    assert d.drop_damaged_shards() == ["part-00001.parquet"]
    ids = np.concatenate([i for i, _ in iter_vectors(d.path)])
    assert ids.tolist() == list(range(20)) + list(range(40, 60))


def test_a_dropped_shard_is_kept_aside_out_of_the_readers_way(tmp_path: Path) -> None:
    d = _dir(tmp_path / "e")
    flip_middle(d.path / "part-00001.parquet")
    d.drop_damaged_shards()
    assert (d.path / DAMAGED / "part-00001.parquet").is_file()


def test_a_manifest_with_the_wrong_dim_is_refused(tmp_path: Path) -> None:
    d = _dir(tmp_path / "e")
    manifest = d.path / ".embedsearch" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"dim": 8', '"dim": 7'))
    with pytest.raises(FormatError, match="manifest says dim 7"):
        list(iter_vectors(d.path))
