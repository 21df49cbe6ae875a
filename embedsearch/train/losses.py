"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al. 2020, eq. 1).

For a batch of N images seen as two views, each of the 2N projections is an anchor
whose positive is its other view and whose negatives are the other 2N - 2
projections (gathered from every rank under DDP). The loss is the mean over anchors of
``-log(exp(sim(i, p) / T) / sum_{k != i} exp(sim(i, k) / T))`` with cosine similarity.
It is computed as a cross-entropy over masked logits in float32, i.e. with a
log-sum-exp, so small temperatures cannot overflow.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from embedsearch.train.distributed import gather_with_grad, rank


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent of two views' projections ``z1``, ``z2`` (N, D): row i of each is one image.

    Under DDP the candidates are the views of the global batch; the result is this rank's
    mean, so the mean over ranks equals the single-process loss on the global batch.

    Args:
        z1, z2: projections of the first and second views (not necessarily normalised).
        temperature: T; lower values weigh hard negatives more (0.1-0.5 are usual).

    Example:
        >>> z = torch.randn(8, 128)
        >>> float(nt_xent_loss(z, z, 0.5)) < float(nt_xent_loss(z, torch.randn(8, 128), 0.5))
        True
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(
            f"views must be (N, D) of the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    n = z1.shape[0]
    local = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    candidates = gather_with_grad(local)
    logits = local @ candidates.T / temperature
    offset = rank() * 2 * n  # this rank's rows sit at [offset, offset + 2n) among the candidates
    rows = torch.arange(2 * n, device=local.device)
    logits[rows, offset + rows] = float("-inf")  # an anchor is not its own negative
    positives = offset + torch.cat([rows[n:], rows[:n]])
    return F.cross_entropy(logits, positives)
