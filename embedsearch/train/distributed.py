"""torch.distributed helpers: rank queries, process-group setup, an all_gather that keeps gradients.

``torchrun --nproc-per-node N embedsearch pretrain ...`` sets ``WORLD_SIZE``/``RANK``/
``LOCAL_RANK``; :func:`init_distributed` turns that into a process group (gloo on the
CPU, nccl on CUDA). Without those variables everything runs as a single rank 0.

Contrastive losses need every rank's embeddings as negatives. ``torch.distributed.all_gather``
returns tensors without history, so gradients would only flow through the local slice;
:func:`gather_with_grad` sums the incoming gradients across ranks in backward (as in
SimCLR's TPU code and solo-learn's ``GatherLayer``), which makes the per-rank loss
gradients add up to the gradient of the loss over the global batch.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True inside an initialised process group with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of ranks (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main_process() -> bool:
    """Only rank 0 writes files and draws progress."""
    return rank() == 0


def init_distributed(device: torch.device) -> bool:
    """Join the process group torchrun describes in the environment; False when not launched so.

    Example:
        >>> init_distributed(torch.device("cpu"))   # plain python: no WORLD_SIZE
        False
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return True


def local_rank() -> int:
    """Index of this process on its machine (picks the CUDA device)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> tuple[torch.Tensor, ...]:
        gathered = [torch.zeros_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, tensor.contiguous())
        return tuple(gathered)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor) -> torch.Tensor:
        # Every rank's loss depends on our slice: sum their gradients, keep our own part.
        stacked = torch.stack(grads)
        dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
        return stacked[dist.get_rank()]


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from all ranks along dim 0, rank order, with gradients.

    Returns ``tensor`` itself on a single process. Example (2 ranks, 4 rows each):
        >>> gather_with_grad(z).shape        # doctest: +SKIP
        torch.Size([8, 128])
    """
    if not is_distributed():
        return tensor
    return torch.cat(_GatherWithGrad.apply(tensor), dim=0)


def all_reduce_mean(value: float, device: torch.device) -> float:
    """Mean of a Python float over ranks (for logging losses)."""
    if not is_distributed():
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return float(tensor.item()) / dist.get_world_size()


def barrier() -> None:
    """Wait for every rank (no-op on a single process)."""
    if is_distributed():
        dist.barrier()
