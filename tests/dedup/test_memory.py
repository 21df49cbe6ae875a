"""What keeps dedup's memory near the vectors' size: presized inverted lists, lean reads, no pandas/torch."""

from __future__ import annotations

import subprocess
import sys

import faiss
import numpy as np
import pyarrow as pa
import pytest

from embedsearch.dedup.inputs import _as_numpy, iter_vector_blocks, load_catalog, resolve_dirs
from embedsearch.dedup.near import add_presized
from embedsearch.store.embedding_dir import EmbeddingDir
from embedsearch.store.writer import ShardWriter


def _trained_ivf(x: np.ndarray, nlist: int) -> faiss.IndexIVFFlat:
    index = faiss.IndexIVFFlat(
        faiss.IndexFlatIP(x.shape[1]), x.shape[1], nlist, faiss.METRIC_INNER_PRODUCT
    )
    index.cp.seed = 1
    index.cp.min_points_per_centroid = 1
    index.train(x)
    return index


def _lists(index: faiss.IndexIVFFlat) -> list[tuple[np.ndarray, np.ndarray]]:
    invlists = index.invlists
    out = []
    for list_no in range(index.nlist):
        size = invlists.list_size(list_no)
        ids = faiss.rev_swig_ptr(invlists.get_ids(list_no), size).copy()
        codes = faiss.rev_swig_ptr(invlists.get_codes(list_no), size * index.code_size).copy()
        out.append((ids, codes))
    return out


def test_add_presized_builds_the_index_that_add_builds(gen) -> None:
    x = gen.random_unit(5000, 16, seed=1)

    def blocks():
        for first in range(0, len(x), 700):
            yield first, x[first : first + 700]

    plain, presized = _trained_ivf(x, 32), _trained_ivf(x, 32)
    for _, vectors in blocks():
        plain.add(vectors)
    add_presized(presized, blocks, len(x))
    assert presized.ntotal == plain.ntotal == len(x)
    for (ids_a, codes_a), (ids_b, codes_b) in zip(_lists(plain), _lists(presized), strict=False):
        np.testing.assert_array_equal(ids_a, ids_b)
        np.testing.assert_array_equal(codes_a, codes_b)
    plain.nprobe = presized.nprobe = 4
    np.testing.assert_array_equal(plain.search(x[:200], 5)[1], presized.search(x[:200], 5)[1])


def test_add_presized_refuses_a_row_count_other_than_announced(gen) -> None:
    x = gen.random_unit(400, 8, seed=2)
    with pytest.raises(ValueError, match="399"):
        add_presized(_trained_ivf(x, 4), lambda: iter([(0, x)]), 399)
    with pytest.raises(ValueError, match="401"):
        add_presized(_trained_ivf(x, 4), lambda: iter([(0, x)]), 401)


def test_inputs_skip_superseded_rows(tmp_path, gen) -> None:
    x = gen.random_unit(13, 8, seed=3)
    d = EmbeddingDir.create_or_open(
        tmp_path / "emb",
        model="m",
        model_options={},
        fingerprint="fp",
        modality="image",
        dim=8,
        source="generated",
    )
    writer = ShardWriter(d, reserve_next_id=10, shard_rows=4)
    writer.add(np.arange(10), [f"s{i}" for i in range(10)], [f"h{i}" for i in range(10)], x[:10])
    writer.close()
    writer = ShardWriter(d, reserve_next_id=13, shard_rows=4)
    writer.add(
        np.arange(10, 13), ["s1", "s2", "s10"], ["h1b", "h2b", "h10"], x[10:], superseded=[1, 2]
    )
    writer.close()
    dirs = resolve_dirs(tmp_path / "emb")
    catalog = load_catalog(dirs)
    live = [0, *range(3, 13)]
    assert catalog.ids.tolist() == live
    assert catalog.source_of(np.arange(len(live))).to_pylist()[-3:] == ["s1", "s2", "s10"]
    vectors = np.concatenate([v for _, v in iter_vector_blocks(dirs, block_rows=3)])
    np.testing.assert_array_equal(vectors, x[live])


def test_as_numpy_reads_slices_and_converts_other_types() -> None:
    values = pa.array(np.arange(10, dtype=np.int64)).slice(3, 4)
    assert _as_numpy(values, np.int64).tolist() == [3, 4, 5, 6]
    assert _as_numpy(pa.array([1, 2], pa.int32()), np.int64).dtype == np.int64
    assert _as_numpy(pa.array([1.5, None]), np.float32)[0] == np.float32(1.5)


def test_the_search_path_imports_neither_pandas_nor_torch(tmp_path, gen) -> None:
    # Each costs 50 MiB or more of RSS held for the whole run; pandas is imported only to write results.
    gen.write_dir(tmp_path / "emb", gen.random_unit(300, 8, seed=4))
    code = (
        "import sys\n"
        "from embedsearch.dedup import api\n"
        "from embedsearch.dedup import near\n"
        "near.EXACT_LIMIT = 100  # the IVF path\n"
        f"inputs = api._open_inputs({str(tmp_path / 'emb')!r}, None)\n"
        "blocks = lambda: inputs.blocks('all', 64)\n"
        "index = near.build_search_index(8, 300, blocks, lambda m: inputs.sample('all', m, 64))\n"
        "assert index.nlist > 1\n"
        "near.search_pairs(index, blocks(), 0.9)\n"
        "print(sorted(m for m in ('pandas', 'torch') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
