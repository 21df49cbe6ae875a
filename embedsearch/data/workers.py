"""DataLoader worker policy shared by ``embed`` and the training loop."""

from __future__ import annotations

import os


def available_cores() -> int:
    """Cores this process may run on (respects CPU affinity / container limits)."""
    return (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    )


def default_workers(device_type: str) -> int:
    """Decoding workers for inference: on CUDA all cores but one feed the GPU; on a CPU none.

    On a CPU the model's threads already use every core: a worker process preempts one of
    them and stalls the rest at the next barrier, while decoding in the main process is cheap
    next to the model (``benchmarks/RESULTS.md``, issue 2).

    Example:
        >>> default_workers("cpu")
        0
    """
    if device_type == "cuda":
        return max(1, min(8, available_cores() - 1))
    return 0


def default_training_workers(device_type: str) -> int:
    """DataLoader workers for training (decoding + two augmented views per image).

    On CUDA all cores but one feed the GPU. On a CPU with fewer than 4 cores none: a worker
    preempts the model's OpenMP threads, while augmenting in-process is cheap next to the
    training step (``benchmarks/RESULTS.md``, issue 4, "Training throughput"). With more
    cores one worker per 4 cores keeps augmentation from becoming a serial step.

    Example:
        >>> default_training_workers("cuda") >= 1
        True
    """
    if device_type == "cuda":
        return default_workers(device_type)
    cores = available_cores()
    return 0 if cores < 4 else min(8, cores // 4)


def worker_init(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: one torch thread per worker, leaving cores to the model."""
    import torch

    torch.set_num_threads(1)
