"""Opening large indexes memory-mapped, and what is verified when (index.storage)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from embedsearch.errors import FormatError
from embedsearch.index import Searcher, build_index, layout, storage


@pytest.fixture
def ivf_dir(tmp_path, emb_dir):
    emb = emb_dir("emb", n=3000, dim=16)
    out = tmp_path / "idx"
    build_index([emb], out, kind="ivf", max_memory="1G")
    return out


def _lists_type(searcher: Searcher) -> tuple[str, bool]:
    import faiss

    lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(searcher.index).invlists)
    return type(lists).__name__, bool(getattr(lists, "read_only", False))


def _short_of_memory(monkeypatch, available: int = 1 << 10) -> None:
    monkeypatch.setattr(storage, "memory_available", lambda: available)


def test_an_ivf_index_larger_than_half_the_memory_is_memory_mapped(ivf_dir, monkeypatch) -> None:
    _short_of_memory(monkeypatch)
    assert _lists_type(Searcher.open(ivf_dir)) == ("OnDiskInvertedLists", True)


def test_an_ivf_index_that_fits_is_read_whole(ivf_dir) -> None:
    assert _lists_type(Searcher.open(ivf_dir))[0] == "ArrayInvertedLists"


def test_a_memory_mapped_index_answers_as_one_read_whole(ivf_dir, monkeypatch, vectors) -> None:
    queries = vectors(20, 16, 9)
    expected = Searcher.open(ivf_dir).search_raw(queries, 10)
    _short_of_memory(monkeypatch)
    got = Searcher.open(ivf_dir).search_raw(queries, 10)
    assert np.array_equal(got[1], expected[1]) and np.allclose(got[0], expected[0])


def test_a_truncated_memory_mapped_index_is_refused_on_open(ivf_dir, monkeypatch) -> None:
    index_file = ivf_dir / layout.INDEX_FILE
    os.truncate(index_file, index_file.stat().st_size - 16)
    _short_of_memory(monkeypatch)
    with pytest.raises(FormatError, match="index.faiss is corrupt"):
        Searcher.open(ivf_dir)


def test_a_flipped_byte_in_a_memory_mapped_index_is_found_by_verify(ivf_dir) -> None:
    index_file = ivf_dir / layout.INDEX_FILE
    raw = bytearray(index_file.read_bytes())
    raw[-100] ^= 0xFF  # in the last inverted list's ids
    index_file.write_bytes(bytes(raw))
    with pytest.raises(FormatError, match="index.faiss is corrupt"):
        layout.verify_index_dir(ivf_dir)


def test_info_verify_names_the_damaged_file(ivf_dir, run_cli) -> None:
    index_file = ivf_dir / layout.INDEX_FILE
    raw = bytearray(index_file.read_bytes())
    raw[-100] ^= 0xFF
    index_file.write_bytes(bytes(raw))
    result = run_cli("info", ivf_dir, "--verify")
    assert result.exit_code == 2 and "index.faiss is corrupt" in result.stderr


def test_info_verify_passes_an_intact_index(ivf_dir, run_cli) -> None:
    assert run_cli("info", ivf_dir, "--verify").exit_code == 0


def test_rows_are_appended_to_an_index_that_would_be_memory_mapped(
    ivf_dir, monkeypatch, tmp_path, emb_dir
) -> None:
    from embedsearch.index import append_index

    more = emb_dir("more", n=100, dim=16, seed=3)
    _short_of_memory(monkeypatch)  # append reads it whole (a mapped index is read-only)
    assert append_index([more], ivf_dir).added == 100


def test_the_cgroup_limit_caps_the_memory_available(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(storage, "_cgroup_limit", lambda: 123 << 20)
    assert storage.memory_available() <= 123 << 20
