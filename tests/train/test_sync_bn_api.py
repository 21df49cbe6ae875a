"""Cross-rank BN uses the supported all-reduce: no deprecation warning (issue 12.4)."""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist

from embedsearch.train import sync_bn


def test_cross_rank_batch_norm_raises_no_deprecation_warning(tmp_path, monkeypatch) -> None:
    # One gloo rank, with the multi-rank path forced: the all-reduce runs, over one rank.
    monkeypatch.setattr(sync_bn, "is_distributed", lambda: True)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        bn = sync_bn.CrossRankBatchNorm(4).train()
        x = torch.randn(8, 4, 3, 3, requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            bn(x).square().sum().backward()
    finally:
        dist.destroy_process_group()
    assert x.grad is not None


def test_one_rank_cross_rank_batch_norm_equals_batch_norm(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sync_bn, "is_distributed", lambda: True)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        x = torch.randn(8, 4, 3, 3, requires_grad=True)
        ours = sync_bn.CrossRankBatchNorm(4).train()(x)
        ours.square().sum().backward()
    finally:
        dist.destroy_process_group()
    y = x.detach().clone().requires_grad_(True)
    theirs = torch.nn.BatchNorm2d(4).train()(y)
    theirs.square().sum().backward()
    assert x.grad is not None and torch.allclose(x.grad, y.grad, atol=1e-5)
