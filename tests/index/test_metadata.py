"""MetadataStore lookups: dense key ranges (the shortcut) and gappy ones give the same rows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from embedsearch.index.metadata import MetadataStore, MetadataWriter


def _store(tmp_path, keys: list[int], files: int = 1) -> MetadataStore:
    names = []
    for number, part in enumerate(np.array_split(np.array(keys, np.int64), files)):
        name = f"meta-{number:05d}.arrow"
        writer = MetadataWriter(tmp_path / name)
        batch = pa.record_batch({"id": pa.array(part), "source": pa.array([f"src{k}" for k in part])})
        writer.write(part, 0, batch)
        writer.close()
        names.append(name)
    return MetadataStore(tmp_path, names)


@pytest.mark.parametrize("keys", [list(range(10, 20)), [10, 12, 13, 17, 19], list(range(19, 9, -1))],
                         ids=["dense", "gaps", "dense-unordered"])
def test_lookup_finds_stored_keys_and_skips_others(tmp_path, keys) -> None:
    store = _store(tmp_path, keys)
    wanted = np.array([-1, 12, 9, 19, 20, 13, 12], np.int64)
    expected_found = np.isin(wanted, keys)
    np.testing.assert_array_equal(store.contains(wanted), expected_found)
    found, columns = store.lookup_columns(wanted)
    np.testing.assert_array_equal(found, expected_found)
    assert columns["source"] == [f"src{k}" for k in wanted[expected_found]]
    rows = store.lookup(wanted)
    assert [r["source"] if r else None for r in rows] == [f"src{k}" if ok else None
                                                         for k, ok in zip(wanted, expected_found)]


def test_several_files_use_the_general_lookup(tmp_path) -> None:
    store = _store(tmp_path, list(range(6)), files=2)
    assert store.lookup_columns(np.array([1])) is None
    assert [r["source"] for r in store.lookup(np.array([5, 0, 3]))] == ["src5", "src0", "src3"]
