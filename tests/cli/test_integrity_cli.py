"""Flipped bytes in a shard or an index: every command refuses by name (exit 2), never answers
wrong; a rerun of `embed` repairs the dir."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.dataset as ds

from embedsearch.store import write_embedding_dir

ARGS = ["--model", "simclr:resnet18", "--image-size", "32", "--workers", "0", "--batch-size", "4"]


def _unit(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def flip_middle(path: Path, count: int = 64) -> None:
    data = bytearray(path.read_bytes())
    start = len(data) // 2 - count // 2
    data[start : start + count] = bytes(b ^ 0xFF for b in data[start : start + count])
    path.write_bytes(bytes(data))


def _damaged_emb(tmp_path: Path) -> Path:
    emb = tmp_path / "emb"
    write_embedding_dir(emb, _unit(300), model="m", shard_rows=100)
    flip_middle(emb / "part-00001.parquet")
    return emb


def test_index_refuses_a_damaged_shard_by_name(tmp_path, run_cli) -> None:
    result = run_cli("index", _damaged_emb(tmp_path), "--out", tmp_path / "idx", "--kind", "flat")
    assert (result.exit_code, "part-00001.parquet" in result.stderr) == (2, True)


def test_index_publishes_nothing_from_a_damaged_shard(tmp_path, run_cli) -> None:
    run_cli("index", _damaged_emb(tmp_path), "--out", tmp_path / "idx", "--kind", "flat")
    assert not (tmp_path / "idx").exists()


def test_dedup_refuses_a_damaged_shard_by_name(tmp_path, run_cli) -> None:
    result = run_cli("dedup", _damaged_emb(tmp_path), "--out", tmp_path / "dups")
    assert (result.exit_code, "part-00001.parquet" in result.stderr) == (2, True)


def _index(tmp_path: Path, run_cli) -> Path:
    emb = tmp_path / "emb"
    write_embedding_dir(emb, _unit(300), model="m", shard_rows=100)
    assert run_cli("index", emb, "--out", tmp_path / "idx", "--kind", "flat").exit_code == 0
    return tmp_path / "idx"


def test_query_refuses_an_index_file_with_flipped_bytes(tmp_path, run_cli) -> None:
    idx = _index(tmp_path, run_cli)
    flip_middle(idx / "index.faiss")
    result = run_cli("query", idx, "--id", "0")
    assert (result.exit_code, "index.faiss is corrupt" in result.stderr) == (2, True)


def test_append_does_not_carry_a_damaged_index_on(tmp_path, run_cli) -> None:
    idx = _index(tmp_path, run_cli)
    flip_middle(idx / "index.faiss")
    more = tmp_path / "more"
    write_embedding_dir(more, _unit(50, seed=3), model="m")
    result = run_cli("index", more, "--out", idx, "--append")
    assert (result.exit_code, "index.faiss is corrupt" in result.stderr) == (2, True)


def test_rerun_of_embed_re_embeds_a_damaged_shard(tmp_path, run_cli, make_images) -> None:
    images = tmp_path / "images"
    make_images(images, 12)
    out = tmp_path / "emb"
    assert run_cli("embed", images, "--out", out, *ARGS, "--shard-rows", "4").exit_code == 0
    flip_middle(out / "part-00001.parquet")
    assert run_cli("embed", images, "--out", out, *ARGS, "--shard-rows", "4").exit_code == 0
    sources = ds.dataset(out).to_table(columns=["source"]).column("source").to_pylist()
    assert sorted(sources) == sorted(str(p) for p in images.glob("*.jpg"))
