"""What keeps dedup's memory near the vectors' size: presized inverted lists, lean reads, no
pandas/torch while searching."""

from __future__ import annotations

import subprocess
import sys

import faiss
import numpy as np
import pandas as pd
import pytest

from embedsearch import find_duplicates
from embedsearch.dedup.pair_search import add_presized
from embedsearch.store.arrays import write_embedding_dir
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


def test_superseded_rows_are_left_out(tmp_path, gen) -> None:
    x = gen.random_unit(13, 8, seed=3)
    x[12] = gen.near_copy(x[0], 0.99, seed=1)  # the new version of s2 copies row 0 ...
    x[4] = gen.near_copy(x[1], 0.99, seed=2)  # ... and the old version of s1 had a copy
    emb = tmp_path / "emb"
    write_embedding_dir(emb, x[:10], sources=[f"s{i}" for i in range(10)], shard_rows=4)
    writer = ShardWriter(EmbeddingDir.open(emb), reserve_next_id=13, shard_rows=4)
    names = ["s1", "s10", "s2"]
    writer.add(np.arange(10, 13), names, ["h1b", "h10", "h2b"], x[10:], superseded=[1, 2])
    writer.close()
    result = find_duplicates(emb, out=tmp_path / "out", threshold=0.95, block_rows=3)
    pairs = pd.read_parquet(result.out / "pairs.parquet")
    assert result.rows == 11
    assert list(zip(pairs.id_a, pairs.id_b, strict=True)) == [(0, 12)]
    kept = (result.out / "keep.txt").read_text().split()
    assert kept == ["s0", *(f"s{i}" for i in range(3, 10)), "s1", "s10"]


def test_the_search_imports_neither_pandas_nor_torch(tmp_path, gen) -> None:
    # Each costs 50 MiB or more of RSS held for the whole run; pandas may load only to write
    # the results, after the search index is freed.
    gen.write_dir(tmp_path / "emb", gen.random_unit(300, 8, seed=4))
    # The progress receiver notes the heavy modules loaded at every report of the search.
    code = (
        "import sys\n"
        "from embedsearch.dedup import find_duplicates, pair_search\n"
        "pair_search.EXACT_LIMIT = 100  # the IVF path\n"
        "class Seen:\n"
        "    seen = set()\n"
        "    def start(self, *_):\n"
        "        self.seen |= {{m for m in ('pandas', 'torch') if m in sys.modules}}\n"
        "    advance = stop = start\n"
        "r = find_duplicates({emb!r}, out={out!r}, threshold=0.9, block_rows=64, progress=Seen())\n"
        "assert r.search.startswith('IVF'), r.search\n"
        "print(sorted(Seen.seen))\n"
    ).format(emb=str(tmp_path / "emb"), out=str(tmp_path / "o"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
