"""DataLoader worker policy shared by ``embed`` and the training loop."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable


def available_cores() -> int:
    """Cores this process may run on (respects CPU affinity / container limits)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_workers(device_type: str) -> int:
    """Decoding workers: on CUDA all cores but one feed the GPU; on a CPU leave most to the model.

    Example:
        >>> default_workers("cpu") >= 0
        True
    """
    cores = available_cores()
    if device_type == "cuda":
        return max(1, min(8, cores - 1))
    return max(1, min(8, cores // 4)) if cores > 1 else 0


def _init_worker(worker_id: int, yield_cpu: bool) -> None:
    import torch

    # Workers decode images; one thread each so they do not fight the model's threads.
    torch.set_num_threads(1)
    if yield_cpu:
        # On a CPU the model's OpenMP threads use every core, and a worker preempting one
        # stalls them all at the next barrier. At the lowest priority the worker runs in the
        # model's idle moments, and when the queue runs dry the model waits and frees the cores.
        try:
            os.nice(19)
        except OSError:
            pass


def worker_init(device_type: str) -> Callable[[int], None]:
    """A picklable DataLoader ``worker_init_fn`` for models running on ``device_type``."""
    return functools.partial(_init_worker, yield_cpu=device_type != "cuda")
