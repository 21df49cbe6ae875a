"""NT-Xent against a straightforward reference implementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedsearch.train.losses import nt_xent_loss


def reference_nt_xent(z1: np.ndarray, z2: np.ndarray, temperature: float) -> float:
    """Eq. 1 of Chen et al. 2020, anchor by anchor, in float64 without any tricks."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z1)
    total = 0.0
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        numerator = np.exp(z[i] @ z[positive] / temperature)
        denominator = sum(np.exp(z[i] @ z[k] / temperature) for k in range(2 * n) if k != i)
        total += -np.log(numerator / denominator)
    return total / (2 * n)


@pytest.mark.parametrize("temperature", [0.5, 0.1])
def test_matches_reference(temperature: float) -> None:
    rng = np.random.default_rng(0)
    z1, z2 = rng.normal(size=(6, 16)), rng.normal(size=(6, 16))
    got = nt_xent_loss(
        torch.tensor(z1, dtype=torch.float32), torch.tensor(z2, dtype=torch.float32), temperature
    )
    assert float(got) == pytest.approx(reference_nt_xent(z1, z2, temperature), rel=1e-5)


def test_aligned_views_score_lower_than_unrelated_ones() -> None:
    z = torch.randn(16, 32)
    assert float(nt_xent_loss(z, z + 0.01 * torch.randn(16, 32))) < float(
        nt_xent_loss(z, torch.randn(16, 32))
    )


def test_stable_at_tiny_temperature() -> None:
    # exp(1 / 0.005) overflows float32; the log-sum-exp form must not.
    z1 = torch.randn(8, 4, requires_grad=True)
    loss = nt_xent_loss(z1, torch.randn(8, 4), temperature=0.005)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z1.grad).all()


def test_rejects_mismatched_views() -> None:
    with pytest.raises(ValueError, match="same shape"):
        nt_xent_loss(torch.randn(4, 8), torch.randn(5, 8))
