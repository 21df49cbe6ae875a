"""`embedsearch delete` on dirs made from arrays (no model): index dirs, several dirs, errors."""

from __future__ import annotations

import numpy as np
import pytest

from embedsearch.store import EmbeddingDir
from embedsearch.store.arrays import write_embedding_dir


@pytest.fixture
def indexed(tmp_path):
    from embedsearch.index import build_index

    x = np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32)
    write_embedding_dir(tmp_path / "a", x[:15], sources=[f"/p/a{i}.jpg" for i in range(15)])
    write_embedding_dir(tmp_path / "b", x[15:], sources=[f"/p/b{i}.jpg" for i in range(15)])
    build_index([tmp_path / "a", tmp_path / "b"], tmp_path / "idx", kind="flat")
    (tmp_path / "remove.txt").write_text("/p/a3.jpg\n/p/b4.jpg\n")
    return tmp_path


def test_delete_through_an_index_dir_edits_each_embedding_dir(indexed, run_cli) -> None:
    result = run_cli("delete", indexed / "idx", "--sources-from", indexed / "remove.txt")
    assert result.exit_code == 0, result.stderr
    deleted = [EmbeddingDir.open(indexed / name).deleted_ids for name in "ab"]
    assert deleted == [{3}, {4}]


def test_a_source_found_in_one_of_the_dirs_is_not_reported_missing(indexed, run_cli) -> None:
    result = run_cli(
        "delete", indexed / "a", indexed / "b", "--sources-from", indexed / "remove.txt"
    )
    assert "not found:" not in result.stderr


def test_ids_with_several_dirs_are_refused(indexed, run_cli) -> None:
    result = run_cli("delete", indexed / "a", indexed / "b", "--ids", "3")
    assert (result.exit_code, "exactly one" in result.stderr) == (2, True)


def test_delete_without_ids_or_sources_is_a_usage_error(indexed, run_cli) -> None:
    assert run_cli("delete", indexed / "a").exit_code == 2
