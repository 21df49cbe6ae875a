"""``info`` on a dedup result dir: the summary for people and a typed document for scripts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embedsearch import find_duplicates
from embedsearch.store.arrays import write_embedding_dir


@pytest.fixture
def dedup_dir(tmp_path):
    x = np.random.default_rng(0).standard_normal((80, 8)).astype(np.float32)
    x[40] = x[3] + 0.001
    write_embedding_dir(tmp_path / "emb", x)
    find_duplicates(tmp_path / "emb", out=tmp_path / "dups", threshold=0.99)
    return tmp_path / "dups"


def test_info_json_describes_a_dedup_dir_by_its_summary(dedup_dir, run_cli) -> None:
    doc = json.loads(run_cli("info", dedup_dir, "--format", "json").stdout)
    summary = json.loads((dedup_dir / "dedup.json").read_text())
    assert (doc["kind"], doc["to_remove"], doc["threshold"]) == (
        "dedup_dir",
        summary["to_remove"],
        0.99,
    )


def test_info_json_lists_the_files_of_a_dedup_dir(dedup_dir, run_cli) -> None:
    doc = json.loads(run_cli("info", dedup_dir, "--format", "json").stdout)
    assert {"keep.txt", "remove.txt", "pairs.parquet"} <= set(doc["files"])


def test_info_table_shows_a_dedup_threshold_with_all_its_decimals(tmp_path, run_cli) -> None:
    x = np.random.default_rng(0).standard_normal((80, 8)).astype(np.float32)
    write_embedding_dir(tmp_path / "emb", x)
    find_duplicates(tmp_path / "emb", out=tmp_path / "dups", threshold=0.9987)
    result = run_cli("info", tmp_path / "dups")
    assert result.exit_code == 0, result.stderr
    assert "dedup dir" in result.stdout
    assert "0.9987" in result.stdout
