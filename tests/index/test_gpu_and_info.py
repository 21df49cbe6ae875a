"""`embedsearch info` on an index dir, and GPU builds (marked gpu; skipped without a GPU faiss)."""

from __future__ import annotations

import json

import pytest

from embedsearch.index import Searcher, build_index, describe_index_dir


def test_info_describes_an_index_dir(emb_dir, tmp_path, run_cli) -> None:
    src = emb_dir("emb", n=800, dim=16)
    build_index([src], tmp_path / "idx", kind="ivf", target_recall=0.9)
    facts = describe_index_dir(tmp_path / "idx")
    assert facts["kind"] == "ivf" and facts["rows (ntotal)"] == 800 and facts["target met"] == "yes"
    assert facts["search params"].startswith("nprobe=") and facts["source 0"].startswith(
        str(src.resolve())
    )
    shown = run_cli("info", tmp_path / "idx", "--json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["factory"] == facts["factory"]


def _gpu_faiss() -> bool:
    import faiss

    return hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0


@pytest.mark.gpu
@pytest.mark.skipif(
    not _gpu_faiss(), reason="needs a faiss build with GPU support and a CUDA device"
)
def test_gpu_build_and_search_match_the_cpu(emb_dir, tmp_path) -> None:
    src = emb_dir("emb", n=5000, dim=32)
    cpu = build_index([src], tmp_path / "cpu", kind="flat", device="cpu")
    gpu = build_index([src], tmp_path / "gpu", kind="ivf", device="cuda", target_recall=0.9)
    assert cpu.met and gpu.met
    on_gpu = Searcher.open(tmp_path / "cpu", device="cuda")
    assert "Gpu" in type(on_gpu.index).__name__
    queries = Searcher.open(tmp_path / "cpu", device="cpu")
    vector = queries.vector_of(11)
    assert [h.id for h in on_gpu.search_vector(vector, 5)] == [
        h.id for h in queries.search_vector(vector, 5)
    ]
