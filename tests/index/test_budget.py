"""Memory sizes for --max-memory."""

from __future__ import annotations

import re

import numpy as np
import pytest

from embedsearch.errors import InputError
from embedsearch.index.budget import default_max_memory, format_bytes, parse_memory


@pytest.mark.parametrize(
    "text, size",
    [
        ("500M", 500 * 2**20),
        ("4G", 4 * 2**30),
        ("1.5G", int(1.5 * 2**30)),
        ("30MB", 30 * 2**20),
        ("30MiB", 30 * 2**20),
        ("2048", 2048),
        ("64k", 64 * 2**10),
        (1000, 1000),
    ],
)
def test_parse_memory_accepts_units(text, size) -> None:
    assert parse_memory(text) == size


@pytest.mark.parametrize("text", ["", "lots", "-5M", "0", "5X", "M"])
def test_parse_memory_refuses_non_sizes(text) -> None:
    with pytest.raises(InputError, match="max-memory"):
        parse_memory(text)


def test_default_budget_is_a_positive_share_of_ram_and_sizes_print() -> None:
    import psutil

    budget = default_max_memory()
    assert 0 < budget < psutil.virtual_memory().total
    assert format_bytes(30 * 2**20) == "30.0 MiB" and format_bytes(512) == "512 B"


def test_a_budget_below_the_smallest_index_is_refused_with_the_minimum(tmp_path) -> None:
    from embedsearch.index import build_index
    from embedsearch.index.plan import choose_index
    from embedsearch.store.arrays import write_embedding_dir

    vectors = np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32)
    write_embedding_dir(tmp_path / "emb", vectors)
    smallest = choose_index(300, 16, 10).estimated_bytes
    with pytest.raises(InputError, match=f"give at least {re.escape(format_bytes(smallest))}"):
        build_index([tmp_path / "emb"], tmp_path / "idx", max_memory="10")


def test_the_smallest_index_budget_itself_is_accepted(tmp_path) -> None:
    from embedsearch.index import build_index
    from embedsearch.index.plan import choose_index
    from embedsearch.store.arrays import write_embedding_dir

    vectors = np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32)
    write_embedding_dir(tmp_path / "emb", vectors)
    smallest = choose_index(300, 16, 10).estimated_bytes
    summary = build_index([tmp_path / "emb"], tmp_path / "idx", max_memory=smallest)
    assert summary.ntotal == 300


def test_cli_refuses_a_tiny_budget_in_one_line(tmp_path, run_cli) -> None:
    from embedsearch.store.arrays import write_embedding_dir

    vectors = np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32)
    write_embedding_dir(tmp_path / "emb", vectors)
    result = run_cli("index", tmp_path / "emb", "-o", tmp_path / "idx", "--max-memory", "10")
    assert (result.exit_code, result.stderr.count("\n")) == (2, 1)
    assert not (tmp_path / "idx").exists()
