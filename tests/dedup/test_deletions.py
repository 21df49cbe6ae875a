"""dedup honours deletions: a deleted copy is neither a duplicate nor in keep/remove.txt."""

from __future__ import annotations

import numpy as np
import pytest

from embedsearch.store import EmbeddingDir
from embedsearch.store.arrays import write_embedding_dir


@pytest.fixture
def copies_with_one_deleted(tmp_path):
    """20 rows = 10 vectors stored twice (a/i, b/i); the copy b/3 is then deleted."""
    base = np.random.default_rng(0).standard_normal((10, 32)).astype(np.float32)
    sources = [f"{side}/{i}.jpg" for side in "ab" for i in range(10)]
    write_embedding_dir(tmp_path / "emb", np.concatenate([base, base]), sources=sources)
    EmbeddingDir.open(tmp_path / "emb").record_deleted([13])
    return tmp_path / "emb"


@pytest.mark.parametrize("method", ["knn", "semdedup"])
def test_a_deleted_copy_is_not_removed_again(run_cli, copies_with_one_deleted, tmp_path, method):
    out = tmp_path / method
    result = run_cli("dedup", copies_with_one_deleted, "--out", out, "--method", method)
    assert result.exit_code == 0, result.stderr
    assert len((out / "remove.txt").read_text().split()) == 9


def test_a_deleted_row_is_not_listed_as_kept(run_cli, copies_with_one_deleted, tmp_path) -> None:
    run_cli("dedup", copies_with_one_deleted, "--out", tmp_path / "d")
    listed = (tmp_path / "d/keep.txt").read_text().split()
    assert "b/3.jpg" not in listed
