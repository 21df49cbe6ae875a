"""``info --format json``: a typed document with stable snake_case keys (issue 12.4)."""

from __future__ import annotations

import json
import re

import numpy as np

from embedsearch.index import build_index
from embedsearch.store.arrays import write_embedding_dir

SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


def keys_of(value, prefix=""):
    if isinstance(value, dict):
        for key, inner in value.items():
            yield prefix + key
            if key not in ("model_options", "training", "last_metrics", "search_params"):
                yield from keys_of(inner, prefix + key + ".")
    elif isinstance(value, list):
        for inner in value:
            yield from keys_of(inner, prefix)


def embedding_dir(tmp_path, n=300):
    vectors = np.random.default_rng(0).normal(size=(n, 8)).astype(np.float32)
    write_embedding_dir(tmp_path / "emb", vectors)
    return tmp_path / "emb"


def test_embedding_dir_json_has_snake_case_keys_and_typed_counts(run_cli, tmp_path) -> None:
    doc = json.loads(run_cli("info", embedding_dir(tmp_path), "--format", "json").stdout)
    assert doc["kind"] == "embedding_dir"
    assert doc["live_rows"] == 300
    assert all(SNAKE.match(key.split(".")[-1]) for key in keys_of(doc))


def test_index_dir_json_types_its_values(run_cli, tmp_path) -> None:
    build_index([embedding_dir(tmp_path)], tmp_path / "idx", kind="ivf", target_recall=0.9)
    doc = json.loads(run_cli("info", tmp_path / "idx", "--format", "json").stdout)
    assert isinstance(doc["recall"]["met"], bool)
    assert isinstance(doc["search_params"]["nprobe"], int)
    assert doc["sources"][0]["indexed_rows"] == 300


def test_index_dir_json_recall_holds_its_documented_keys(run_cli, tmp_path) -> None:
    build_index([embedding_dir(tmp_path)], tmp_path / "idx", kind="flat")
    doc = json.loads(run_cli("info", tmp_path / "idx", "--format", "json").stdout)
    assert list(doc["recall"]) == ["k", "recall_at_k", "target", "met"]


def test_index_dir_json_latency_holds_its_documented_keys(run_cli, tmp_path) -> None:
    build_index([embedding_dir(tmp_path)], tmp_path / "idx", kind="flat")
    doc = json.loads(run_cli("info", tmp_path / "idx", "--format", "json").stdout)
    assert list(doc["latency"]) == ["p50_ms", "p99_ms", "batch_qps"]


def test_run_dir_json_lists_modalities_and_parses_metrics(run_cli, tmp_path) -> None:
    from embedsearch.encoders import load_encoder
    from embedsearch.encoders.rundir import save_run_dir

    enc = load_encoder("tiny-clip")
    run = save_run_dir(tmp_path / "run", enc.config, enc.model.state_dict())
    (run / "metrics.jsonl").write_text('{"epoch": 1, "loss": 4.2}\n')
    doc = json.loads(run_cli("info", run, "--format", "json").stdout)
    assert doc["modalities"] == ["image", "text"]
    assert doc["last_metrics"] == {"epoch": 1, "loss": 4.2}
    assert doc["open_clip_loadable"] is True


def test_json_flag_is_a_hidden_alias_of_format_json(run_cli, tmp_path) -> None:
    emb = embedding_dir(tmp_path)
    old = run_cli("info", emb, "--json").stdout
    assert json.loads(old) == json.loads(run_cli("info", emb, "--format", "json").stdout)


def test_json_flag_is_not_listed_in_help(run_cli) -> None:
    assert "--json" not in run_cli("info", "--help").stdout


def test_embedding_dir_json_counts_deleted_rows(run_cli, tmp_path) -> None:
    from embedsearch.store import EmbeddingDir

    path = embedding_dir(tmp_path)
    EmbeddingDir.open(path).record_deleted([3, 4])
    doc = json.loads(run_cli("info", path, "--format", "json").stdout)
    assert doc["deleted_rows"] == 2
