"""A build holds the index dir's run lock, like an append: two writers never overlap."""

from __future__ import annotations

import numpy as np
import pytest

from embedsearch.index import build_index
from embedsearch.index.layout import index_writer_lock
from embedsearch.store.arrays import write_embedding_dir
from embedsearch.store.runlock import BusyError


def test_a_build_is_refused_while_another_writer_holds_the_index_dir(tmp_path) -> None:
    vectors = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    write_embedding_dir(tmp_path / "emb", vectors)
    out = tmp_path / "idx"
    with index_writer_lock(out), pytest.raises(BusyError, match="is being written by"):
        build_index([tmp_path / "emb"], out, kind="flat")


def test_a_build_leaves_no_index_while_refused(tmp_path) -> None:
    vectors = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    write_embedding_dir(tmp_path / "emb", vectors)
    out = tmp_path / "idx"
    with index_writer_lock(out), pytest.raises(BusyError):
        build_index([tmp_path / "emb"], out, kind="flat")
    assert not out.exists()
