"""--append: new dirs and new rows are added once, without retraining; other models are refused."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from embedsearch.errors import MismatchError
from embedsearch.index import Searcher, append_index, build_index
from embedsearch.index.layout import read_info


def _centroids(path) -> np.ndarray:
    index = faiss.read_index(str(path / "index.faiss"))  # keep a reference: ivf points into it
    ivf = faiss.extract_index_ivf(index)
    return ivf.quantizer.reconstruct_n(0, ivf.nlist).copy()


def test_append_adds_new_dirs_and_new_rows_exactly_once(tmp_path, vectors, write_emb) -> None:
    a, b = vectors(1500, 32, 1), vectors(500, 32, 2)
    write_emb(tmp_path / "a", a, prefix="a")
    write_emb(tmp_path / "b", b, prefix="b")  # ids 0..499 collide with a's
    out = tmp_path / "idx"
    build_index([tmp_path / "a"], out, kind="ivf", target_recall=0.9)
    trained = _centroids(out)

    added = append_index([tmp_path / "b"], out)
    assert (added.added, added.ntotal) == (500, 2000)
    assert np.array_equal(_centroids(out), trained)  # no retraining
    hit = Searcher.open(out).search_vector(b[42], k=1)[0]
    assert (hit.id, hit.dir, hit.source) == (42, 1, "b/42.png")

    again = append_index([tmp_path / "a", tmp_path / "b"], out)
    assert (again.added, again.ntotal) == (0, 2000)

    more = vectors(300, 32, 3)
    write_emb(tmp_path / "a", more, start_id=1500, prefix="a")  # new rows of an indexed dir
    grown = append_index([tmp_path / "a"], out)
    assert (grown.added, grown.ntotal) == (300, 2300)
    info = read_info(out)
    assert [s.indexed_rows for s in info.sources] == [1800, 500]
    assert info.recall.recall_at_k is not None
    assert info.recall.recall_at_k >= 0.9
    assert info.append_seconds is not None
    s = Searcher.open(out)
    assert len(set(s.store.keys.tolist())) == 2300 == s.ntotal
    top = s.search_vector(more[10], k=1)[0]
    assert (top.id, top.source) == (1510, "a/1510.png")


def test_append_refuses_another_model_and_a_missing_index(tmp_path, vectors, write_emb) -> None:
    write_emb(tmp_path / "a", vectors(400, 16, 1))
    write_emb(
        tmp_path / "other", vectors(400, 16, 2), fingerprint="fp-other", model="openclip:RN50"
    )
    build_index([tmp_path / "a"], tmp_path / "idx", kind="flat")
    with pytest.raises(MismatchError, match="different models"):
        append_index([tmp_path / "other"], tmp_path / "idx")
    assert read_info(tmp_path / "idx").ntotal == 400
    with pytest.raises(Exception, match="does not exist|not an index dir"):
        append_index([tmp_path / "a"], tmp_path / "missing")


def test_append_drops_rows_their_dir_superseded(tmp_path, vectors, write_emb) -> None:
    from embedsearch.store.embedding_dir import EmbeddingDir
    from embedsearch.store.writer import ShardWriter

    base = vectors(600, 16, 1)
    write_emb(tmp_path / "a", base, prefix="a")
    build_index([tmp_path / "a"], tmp_path / "idx", kind="ivf", target_recall=0.9)
    # the file behind id 3 changed: re-embedded as id 600, id 3 superseded
    d = EmbeddingDir.open(tmp_path / "a")
    writer = ShardWriter(d, reserve_next_id=601)
    changed = vectors(1, 16, 7)
    writer.add([600], ["a/3.png"], ["h-new"], changed, {"label": [3]}, superseded=[3])
    writer.close()
    s = append_index([tmp_path / "a"], tmp_path / "idx")
    assert (s.added, s.ntotal) == (1, 600)
    searcher = Searcher.open(tmp_path / "idx")
    assert searcher.search_vector(base[3], k=600)[0].id != 3
    assert 3 not in [h.id for h in searcher.search_vector(base[3], k=600)]
    top = searcher.search_vector(changed[0], k=1)[0]
    assert (top.id, top.source) == (600, "a/3.png")


@pytest.mark.parametrize(
    "option", [["--kind", "hnsw"], ["--max-memory", "1G"], ["--overwrite"]], ids=str
)
def test_cli_append_refuses_options_it_would_ignore(
    tmp_path, vectors, write_emb, run_cli, option
) -> None:
    write_emb(tmp_path / "a", vectors(400, 16, 1))
    build_index([tmp_path / "a"], tmp_path / "idx", kind="flat")
    result = run_cli("index", tmp_path / "a", "--out", tmp_path / "idx", "--append", *option)
    assert result.exit_code == 2
    assert option[0] in result.stderr
    assert read_info(tmp_path / "idx").kind == "flat"


def test_build_index_has_no_append_switch(tmp_path, vectors, write_emb) -> None:
    # appending is append_index: build_index cannot be asked to append and ignore its options
    write_emb(tmp_path / "a", vectors(400, 16, 1))
    with pytest.raises(TypeError):
        build_index([tmp_path / "a"], tmp_path / "idx", append=True)  # type: ignore[call-arg]
    assert not (tmp_path / "idx").exists()
