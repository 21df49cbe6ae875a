"""Optional GPU use through faiss's own machinery (a faiss build with GPU support).

With ``device="auto"`` the GPU is used when faiss can see one, and results are the same
as on the CPU otherwise: IVF k-means runs on the GPU, and flat / IVF-flat / IVF-SQ
searches are served by a GPU copy of the index. Anything faiss cannot move stays on the CPU.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from embedsearch.errors import InputError

Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = get_args(Device)


def faiss_gpus() -> int:
    """Number of GPUs the installed faiss can use (0 for faiss-cpu)."""
    import faiss

    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def use_gpu(device: str) -> bool:
    """Resolve ``auto``/``cpu``/``cuda`` for faiss; ``cuda`` without a GPU faiss is an error."""
    if device not in DEVICES:
        raise InputError(f"unknown --device {device!r}: use auto, cpu or cuda")
    if device == "cpu":
        return False
    gpus = faiss_gpus()
    if device == "cuda" and gpus == 0:
        raise InputError(
            "--device cuda: the installed faiss has no GPU support (faiss-cpu); use --device auto"
        )
    return gpus > 0


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
