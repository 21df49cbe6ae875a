"""The case dedup exists for: every item present twice (the same files in ``a/`` and ``b/``)."""

from __future__ import annotations

import numpy as np
import pytest

from embedsearch.store.arrays import write_embedding_dir


@pytest.fixture
def two_copies(tmp_path):
    """60 rows = 30 random vectors, each stored as ``a/i.jpg`` and ``b/i.jpg``."""
    rng = np.random.default_rng(0)
    base = rng.standard_normal((30, 64)).astype(np.float32)
    sources = [f"{side}/{i}.jpg" for side in "ab" for i in range(30)]
    write_embedding_dir(tmp_path / "emb", np.concatenate([base, base]), sources=sources)
    return tmp_path / "emb"


@pytest.mark.parametrize("method", ["knn", "semdedup"])
def test_dedup_of_two_identical_folders_removes_one_copy_each(
    run_cli, two_copies, tmp_path, method
) -> None:
    out = tmp_path / f"dedup-{method}"
    result = run_cli("dedup", two_copies, "--out", out, "--method", method)
    assert result.exit_code == 0, result.stderr
    removed = (out / "remove.txt").read_text().split()
    assert len(removed) == 30


def test_histogram_of_scores_a_few_ulps_apart() -> None:
    from embedsearch.dedup.report import histogram_text

    best = np.array([0.99999994, 1.0, 1.0000001] * 10, dtype=np.float32)
    text = histogram_text(best, 0.95, "given")
    assert text.count("\n  +") == 50  # one line per bin
