"""An embedding dir reads as a dataset in the readers people use, by their first documented form
(issue 12, item 3), with errors recorded (another schema) in the dir; old dirs still open."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from embedsearch.store import EmbeddingDir, iter_vectors, write_embedding_dir
from embedsearch.store.writer import ShardWriter

DIM = 8


def _unit(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def emb(tmp_path: Path) -> Path:
    d = write_embedding_dir(tmp_path / "emb", _unit(30), model="m", shard_rows=10)
    writer = ShardWriter(d, reserve_next_id=30)
    writer.add_failure("broken.jpg", "not an image")  # errors.parquet: another schema
    writer.close()
    return d.path


def test_pandas_reads_the_dir(emb: Path) -> None:
    import pandas as pd

    assert len(pd.read_parquet(emb)["embedding"]) == 30


def test_pyarrow_dataset_reads_the_dir(emb: Path) -> None:
    import pyarrow.dataset as ds

    assert ds.dataset(emb).to_table(columns=["embedding"]).num_rows == 30


def test_duckdb_reads_the_shards(emb: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    rows = duckdb.sql(f"SELECT count(embedding) FROM read_parquet('{emb}/*.parquet')").fetchall()
    assert rows == [(30,)]


def test_polars_reads_the_shards(emb: Path) -> None:
    pl = pytest.importorskip("polars")
    assert pl.read_parquet(f"{emb}/*.parquet")["embedding"].len() == 30


def test_polars_scans_the_shards(emb: Path) -> None:
    pl = pytest.importorskip("polars")
    assert pl.scan_parquet(f"{emb}/*.parquet").select("embedding").collect().height == 30


def test_polars_keeps_the_fixed_size(emb: Path) -> None:
    pl = pytest.importorskip("polars")
    assert pl.read_parquet(f"{emb}/*.parquet")["embedding"].dtype == pl.Array(pl.Float32, DIM)


def test_hf_datasets_reads_the_dir(emb: Path, tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import datasets

    loaded = datasets.load_dataset("parquet", data_dir=str(emb), cache_dir=str(tmp_path / "hf"))
    assert loaded["train"].num_rows == 30


def _to_first_layout(path: Path) -> None:
    """Put manifest and errors back beside the shards, as the first release wrote them."""
    os.replace(path / ".embedsearch" / "manifest.json", path / "manifest.json")
    os.replace(path / ".embedsearch" / "errors.parquet", path / "errors.parquet")


def test_a_dir_of_the_first_layout_still_reads(emb: Path) -> None:
    _to_first_layout(emb)
    assert sum(len(ids) for ids, _ in iter_vectors(emb)) == 30


def test_a_dir_of_the_first_layout_keeps_its_errors(emb: Path) -> None:
    _to_first_layout(emb)
    assert EmbeddingDir.open(emb).read_errors().num_rows == 1


def test_the_next_write_moves_a_first_layout_dir(emb: Path) -> None:
    _to_first_layout(emb)
    write_embedding_dir(emb, _unit(5, seed=1), model="m")
    names = sorted(p.name for p in emb.iterdir() if not p.name.startswith("part-"))
    assert names == [".embedsearch"]


def test_a_moved_dir_keeps_its_rows_and_errors(emb: Path) -> None:
    _to_first_layout(emb)
    write_embedding_dir(emb, _unit(5, seed=1), model="m")
    manifest = json.loads((emb / ".embedsearch" / "manifest.json").read_text())
    assert (manifest["totals"]["rows"], manifest["totals"]["failures"]) == (35, 1)
