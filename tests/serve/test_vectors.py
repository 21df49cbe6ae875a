"""StoredVectors: the stored vector of any id, across shards and row groups, like ``vector_of``."""

from __future__ import annotations

import numpy as np

from embedsearch.serve.vectors import StoredVectors
from embedsearch.store.embedding_dir import EmbeddingDir
from embedsearch.store.writer import ShardWriter


def write(path, ids, vectors, fingerprint="fp", shard_rows=10, row_group_rows=4):
    d = EmbeddingDir.create_or_open(
        path,
        model="simclr:resnet18",
        model_options={},
        fingerprint=fingerprint,
        modality="image",
        dim=vectors.shape[1],
        source="synthetic",
    )
    writer = ShardWriter(
        d, reserve_next_id=int(max(ids)) + 1, shard_rows=shard_rows, row_group_rows=row_group_rows
    )
    writer.add(np.asarray(ids), [f"s/{i}" for i in ids], [f"h{i}" for i in ids], vectors, {})
    writer.close()


def test_every_id_across_shards_and_groups_gets_its_own_vector(tmp_path) -> None:
    vectors = np.random.default_rng(0).standard_normal((37, 8)).astype(np.float32)
    write(tmp_path / "emb", list(range(37)), vectors)
    stored = StoredVectors.open(tmp_path / "emb", "fp", 8)
    assert len(stored._where) >= 10  # several shards, several groups each
    got = stored.get([36, 0, 17, 5, 17])
    assert sorted(got) == [0, 5, 17, 36]
    for i in got:
        np.testing.assert_array_equal(got[i], vectors[i])
    assert stored.get([99]) == {}


def test_cache_stays_under_its_byte_bound(tmp_path) -> None:
    vectors = np.random.default_rng(1).standard_normal((40, 8)).astype(np.float32)
    write(tmp_path / "emb", list(range(40)), vectors)
    stored = StoredVectors.open(tmp_path / "emb", "fp", 8)
    stored.cache_bytes = 300  # about two 4-row groups
    for i in range(40):
        np.testing.assert_array_equal(stored.get([i])[i], vectors[i])
    assert stored._cached_bytes <= 300 + 4 * 8 * 4 + 4 * 16 and len(stored._cache) <= 2


def test_other_model_or_missing_dir_gives_none(tmp_path) -> None:
    write(tmp_path / "emb", [0, 1], np.ones((2, 8), np.float32))
    assert StoredVectors.open(tmp_path / "emb", "another-fingerprint", 8) is None
    assert StoredVectors.open(tmp_path / "gone", "fp", 8) is None
