"""DataLoader worker policy shared by ``embed`` and the training loop."""

from __future__ import annotations

import os


def available_cores() -> int:
    """Cores this process may run on (respects CPU affinity / container limits)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_workers(device_type: str) -> int:
    """Decoding workers for inference: on CUDA all cores but one feed the GPU; on a CPU none.

    On a CPU the model's threads already use every core: a worker process preempts one of
    them and stalls the rest at the next barrier, and at low priority it starves while they
    spin. Decoding a small image in the main process between batches costs ~1 ms against
    tens of ms of model time (benchmarks/embed_throughput.py).

    Example:
        >>> default_workers("cpu")
        0
    """
    if device_type == "cuda":
        return max(1, min(8, available_cores() - 1))
    return 0


def worker_init(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: one torch thread per worker, so workers don't fight the model."""
    import torch

    torch.set_num_threads(1)
