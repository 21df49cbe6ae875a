"""The embedding dir: manifest contract, atomic commits, superseded rows, concurrent writers."""

from __future__ import annotations

import json
import multiprocessing

import numpy as np
import pytest

from embedsearch.errors import FormatError, MismatchError
from embedsearch.store import EmbeddingDir, iter_vectors
from embedsearch.store.reader import iter_batches
from embedsearch.store.writer import ShardWriter

DIM = 4


def _open(path, fingerprint="fp", modality="image"):
    return EmbeddingDir.create_or_open(
        path,
        model="m",
        model_options={},
        fingerprint=fingerprint,
        modality=modality,
        dim=DIM,
        source="src",
    )


def _vectors(n, seed=0):
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_writer_splits_shards_and_manifest_counts_rows(tmp_path) -> None:
    d = _open(tmp_path / "e")
    writer = ShardWriter(d, reserve_next_id=10, shard_rows=4)
    writer.add(
        list(range(10)),
        [f"s{i}" for i in range(10)],
        ["h"] * 10,
        _vectors(10),
        {"label": list(range(10))},
    )
    writer.add_failure("bad.jpg", "corrupt")
    writer.close()
    manifest = json.loads((tmp_path / "e" / ".embedsearch" / "manifest.json").read_text())
    assert [s["rows"] for s in manifest["shards"]] == [4, 4, 2]
    assert [(s["min_id"], s["max_id"]) for s in manifest["shards"]] == [(0, 3), (4, 7), (8, 9)]
    assert manifest["totals"] == {"rows": 10, "live_rows": 10, "failures": 1}
    assert manifest["next_id"] == 10
    ids = np.concatenate([i for i, _ in iter_vectors(tmp_path / "e", batch_rows=3)])
    assert ids.tolist() == list(range(10))


def test_superseded_rows_are_not_live(tmp_path) -> None:
    d = _open(tmp_path / "e")
    writer = ShardWriter(d, reserve_next_id=3)
    writer.add([0, 1], ["a", "b"], ["h1", "h1"], _vectors(2))
    writer.close()
    writer = ShardWriter(d, reserve_next_id=3)
    writer.add([2], ["a"], ["h2"], _vectors(1, seed=1), superseded=[0])
    writer.close()
    live = [r for b in iter_batches(d, ["id", "source"]) for r in b.to_pylist()]
    assert live == [{"id": 1, "source": "b"}, {"id": 2, "source": "a"}]
    everything = [r["id"] for b in iter_batches(d, ["id"], live_only=False) for r in b.to_pylist()]
    assert everything == [0, 1, 2]
    assert EmbeddingDir.open(tmp_path / "e").live_rows == 2


def test_metadata_types_of_later_batches_follow_the_first(tmp_path) -> None:
    d = _open(tmp_path / "e")
    writer = ShardWriter(d, reserve_next_id=2)
    writer.add([0], ["a"], ["h"], _vectors(1), {"label": [1]})
    writer.add([1], ["b"], ["h"], _vectors(1), {"label": ["2"]})  # a later block inferred as string
    writer.close()
    labels = [r["label"] for b in iter_batches(d, ["label"]) for r in b.to_pylist()]
    assert labels == [1, 2]


def test_other_model_or_modality_is_refused(tmp_path) -> None:
    _open(tmp_path / "e")
    with pytest.raises(MismatchError, match="refusing to mix"):
        _open(tmp_path / "e", fingerprint="other")
    with pytest.raises(MismatchError, match="text embeddings"):
        _open(tmp_path / "e", modality="text")


def test_non_empty_foreign_folder_is_not_taken_over(tmp_path) -> None:
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "precious.txt").write_text("mine")
    with pytest.raises(FormatError, match="non-empty folder"):
        _open(tmp_path / "e")


def _writer_process(path: str, rank: int) -> None:
    d = EmbeddingDir.open(path)
    for k in range(5):
        writer = ShardWriter(d, reserve_next_id=1000)
        ids = [rank * 100 + k * 10 + j for j in range(3)]
        writer.add(ids, [f"r{rank}-{i}" for i in ids], ["h"] * 3, _vectors(3, seed=rank))
        writer.close()


def test_concurrent_writers_never_lose_or_overwrite_shards(tmp_path) -> None:
    _open(tmp_path / "e")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer_process, args=(str(tmp_path / "e"), r)) for r in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    d = EmbeddingDir.open(tmp_path / "e")
    assert len(d.shards) == 15
    assert len({s.file for s in d.shards}) == 15
    ids = np.concatenate([i for i, _ in iter_vectors(d)])
    assert len(ids) == 45
    assert len(set(ids.tolist())) == 45
