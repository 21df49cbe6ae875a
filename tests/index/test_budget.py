"""Memory sizes for --max-memory."""

from __future__ import annotations

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
