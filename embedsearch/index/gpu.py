"""Optional GPU use through faiss's own machinery (a faiss build with GPU support).

With ``device="auto"`` the GPU is used when faiss can see one, and results are the same
as on the CPU otherwise: IVF k-means runs on the GPU, and flat / IVF-flat / IVF-SQ
searches are served by a GPU copy of the index. Anything faiss cannot move stays on the CPU.
"""

from __future__ import annotations

from typing import Any

from embedsearch.devices import use_accelerator


def faiss_gpus() -> int:
    """Number of GPUs the installed faiss can use (0 for faiss-cpu)."""
    import faiss

    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def use_gpu(device: str) -> bool:
    """Resolve ``auto``/``cpu``/``cuda`` for faiss (the rule of :mod:`embedsearch.devices`)."""
    if device == "cpu":  # without asking faiss, which may be slow to probe for GPUs
        return False
    return use_accelerator(
        device, faiss_gpus() > 0, "a GPU build of faiss (faiss-cpu is installed)"
    )


def train_on_device(index: Any, sample: Any, gpu: bool) -> None:
    """Train ``index`` on ``sample``; with ``gpu`` the IVF k-means assignment runs on the GPU."""
    import faiss

    from embedsearch.index.search_params import ivf_of

    ivf = ivf_of(index) if gpu else None
    if ivf is not None:
        ivf.clustering_index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatL2(ivf.d))
    index.train(sample)


def to_search_device(index: Any, gpu: bool) -> Any:
    """A GPU copy of ``index`` when asked and supported, else ``index`` itself."""
    if not gpu:
        return index
    import faiss

    try:
        return faiss.index_cpu_to_all_gpus(index)
    except (RuntimeError, AttributeError):
        return index  # e.g. HNSW or refine indexes have no GPU version
