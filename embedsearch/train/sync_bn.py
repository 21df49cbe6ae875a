"""Batch norm with statistics over the global batch of all ranks, on the CPU too.

``torch.nn.SyncBatchNorm`` refuses CPU modules ("SyncBatchNorm layers only work with GPU
modules"), yet SimCLR needs global BN statistics for DDP to compute the same thing as
one process: with per-rank statistics each rank normalises differently, and the
positives can "cheat" through batch statistics (the reason SimCLR uses global BN).
:class:`CrossRankBatchNorm` all-reduces per-channel sums, then sums of squared deviations, with
an all-reduce with a backward (:class:`_AllReduceSum`, over the supported
``torch.distributed.all_reduce``; torch deprecates ``torch.distributed.nn.functional``), so
gradients flow through the global statistics exactly as in a single-process batch norm. On CUDA,
:func:`convert_sync_batchnorm` uses torch's fused ``SyncBatchNorm`` instead.
"""

from __future__ import annotations

import torch
from torch import nn

from embedsearch.train.distributed import is_distributed


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose gradient is the sum of the ranks' gradients (each rank's loss
    depends on every rank's input through the global statistics)."""

    @staticmethod
    def forward(ctx: object, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        torch.distributed.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        torch.distributed.all_reduce(grad)
        return grad


class CrossRankBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over (N, C, ...) whose training statistics cover every rank's batch.

    Same parameters and buffers as ``nn.BatchNorm1d/2d``, so state dicts are interchangeable.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected (N, C, ...) input, got {input.dim()}-d")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        all_reduce = _AllReduceSum.apply
        channels = x.shape[1]
        dims = [0, *range(2, x.dim())]
        x32 = x.float()
        count = torch.tensor([x.numel() / channels], dtype=torch.float32, device=x.device)
        sums = all_reduce(torch.cat([x32.sum(dims), count]))
        total = sums[-1]
        shape = [1, channels] + [1] * (x.dim() - 2)
        centred = x32 - (sums[:channels] / total).view(shape)
        # Two passes (mean, then squared deviations): E[x^2] - E[x]^2 loses precision where
        # |mean| >> std, as deep in a ResNet, enough to change gradients by ~1 %.
        var = all_reduce((centred * centred).sum(dims)) / total
        mean = sums[:channels] / total
        if self.track_running_stats:
            self._update_running_stats(
                mean.detach(), var.detach() * total / (total - 1).clamp_min(1)
            )
        y = centred * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, unbiased_var: torch.Tensor) -> None:
        running_mean, running_var = self.running_mean, self.running_var
        tracked = self.num_batches_tracked
        if running_mean is None or running_var is None or tracked is None:
            return  # only called with track_running_stats, which allocates all three
        tracked.add_(1)
        momentum = self.momentum if self.momentum is not None else 1.0 / float(tracked)
        running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
        running_var.mul_(1 - momentum).add_(unbiased_var, alpha=momentum)


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Replace every BatchNorm layer by a cross-rank one (torch's SyncBatchNorm on CUDA).

    Example:
        >>> model = convert_sync_batchnorm(model, torch.device("cpu"))   # doctest: +SKIP
    """
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert(module)


def _convert(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        replacement = CrossRankBatchNorm(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
        )
        replacement.load_state_dict(module.state_dict())
        replacement.train(module.training)
        return replacement
    for name, child in module.named_children():
        module.add_module(name, _convert(child))
    return module
