"""LARS, parameter groups and the warmup + cosine schedule."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from embedsearch.errors import InputError
from embedsearch.train.lars import LARS
from embedsearch.train.optim import build_optimizer, split_decay_groups, warmup_cosine


def test_groups_exclude_norms_and_biases_from_decay() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2, bias=False))
    decay, no_decay = split_decay_groups(model, 0.1, lambda name, p: p.ndim <= 1)
    assert [p.shape for p in decay["params"]] == [torch.Size([8, 4]), torch.Size([2, 8])]
    assert (
        len(no_decay["params"]) == 3
        and no_decay["weight_decay"] == 0.0
        and no_decay["lars_exclude"]
    )


def test_lars_scales_step_by_trust_ratio() -> None:
    weight = nn.Parameter(torch.full((10,), 2.0))
    weight.grad = torch.full((10,), 100.0)
    LARS([weight], lr=1.0, momentum=0.0, eta=0.01).step()
    # trust = eta * |w| / |g| = 0.01 * 2 / 100: the step is 0.01 * |w|-sized, not the raw gradient.
    assert torch.allclose(weight, torch.full((10,), 2.0 - 0.01 * 2 / 100 * 100))


def test_lars_excluded_group_is_plain_momentum_sgd() -> None:
    a, b = nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(3))
    lars = LARS([{"params": [a], "lars_exclude": True, "weight_decay": 0.0}], lr=0.1, momentum=0.9)
    sgd = torch.optim.SGD([b], lr=0.1, momentum=0.9)
    for step in range(3):
        a.grad = torch.full((3,), float(step + 1))
        b.grad = a.grad.clone()
        lars.step()
        sgd.step()
    assert torch.allclose(a, b)


def test_unknown_optimizer_is_a_user_error() -> None:
    with pytest.raises(InputError, match="lars, sgd, adamw"):
        build_optimizer("adagrad", [{"params": [nn.Parameter(torch.ones(1))]}], 0.1)


def test_warmup_then_cosine_to_zero() -> None:
    f = warmup_cosine(warmup_steps=4, total_steps=20)
    values = [f(s) for s in range(20)]
    assert values[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(x >= y for x, y in itertools.pairwise(values[4:]))  # monotone decay after warmup
    assert 0 < values[-1] < 0.01  # decays to ~0, but the last step still learns


def test_adamw_is_fused_for_parameters_on_the_cpu() -> None:
    # The fused kernel is what keeps the tiny CLIP's optimiser step cheap on the CPU.
    groups = split_decay_groups(nn.Linear(4, 4), 0.1, lambda n, p: p.ndim < 2)
    assert build_optimizer("adamw", groups, 1e-3).defaults["fused"] is True
