"""LARS: layer-wise adaptive rate scaling (You et al. 2017), as SimCLR trains with it.

Each parameter's step is scaled by a trust ratio ``eta * ||w|| / (||g|| + wd * ||w||)`` so
that every layer moves by a similar relative amount, which keeps very large batches
stable. Parameter groups with ``lars_exclude=True`` (BN weights and biases, as in the
SimCLR paper) get neither weight decay nor adaptation: plain momentum SGD.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


class LARS(torch.optim.Optimizer):
    """SGD with momentum and a per-parameter trust ratio.

    Args:
        params: parameters or groups; a group may set ``lars_exclude=True``.
        lr: learning rate (SimCLR: 0.3 x batch / 256).
        momentum: heavy-ball momentum.
        weight_decay: L2 penalty added to the gradient before adaptation.
        eta: trust coefficient.

    Example:
        >>> opt = LARS(model.parameters(), lr=0.3, weight_decay=1e-6)   # doctest: +SKIP
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        eta: float = 0.001,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "eta": eta,
            "lars_exclude": False,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if not group["lars_exclude"]:
                    if group["weight_decay"]:
                        grad = grad.add(p, alpha=group["weight_decay"])
                    w_norm, g_norm = torch.norm(p), torch.norm(grad)
                    # No adaptation while either norm is zero (fresh zero-init layers).
                    trust = torch.where(
                        (w_norm > 0) & (g_norm > 0),
                        group["eta"] * w_norm / g_norm,
                        torch.ones_like(w_norm),
                    )
                    grad = grad.mul(trust)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = grad.detach().clone()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(grad)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss
