"""Symmetric InfoNCE (the CLIP loss) with a learnable logit scale, gathered across ranks.

Radford et al. 2021, "Learning Transferable Visual Models From Natural Language
Supervision", section 2.3: for a batch of N pairs, the N x N matrix of scaled
cosine similarities is a classification problem in both directions (each image
picks its caption among N, each caption its image); the loss is the mean of the
two cross-entropies. The temperature is learned as ``logit_scale = log(1/T)``,
initialised at ``log(1/0.07)`` and clamped so the scale never exceeds 100.

Under torchrun, features are gathered from every rank *with* gradients, and each
rank scores only its own rows against all gathered columns ("local loss", as in
open_clip's ``--local-loss --gather-with-grad``): the logits are ``n x (world * n)``
instead of ``(world * n)^2``, so memory grows linearly with the global batch, and
the averaged gradients equal those of the single-process loss on the whole batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from embedsearch.train import distributed

LOGIT_SCALE_MAX = math.log(100.0)


def clip_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: torch.Tensor,
    *,
    gather: bool = True,
) -> torch.Tensor:
    """Symmetric InfoNCE of L2-normalised features; row ``i`` of each side is a pair.

    Args:
        image_features: (n, d) normalised image embeddings of this rank's batch.
        text_features: (n, d) normalised text embeddings, paired row by row.
        logit_scale: scalar log of the inverse temperature (learnable); the scale used
            is ``exp(min(logit_scale, log 100))``.
        gather: under an initialised torch.distributed group, gather the features of
            every rank as negatives (local-loss form); ignored in a single process.

    Example:
        >>> f = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
        >>> round(float(clip_loss(f, f, torch.tensor(0.0))), 3) < math.log(4)
        True
    """
    scale = logit_scale.clamp(max=LOGIT_SCALE_MAX).exp()
    rank = distributed.rank() if gather else 0
    if gather and distributed.is_distributed():
        all_images = distributed.gather_with_grad(image_features)
        all_texts = distributed.gather_with_grad(text_features)
    else:
        all_images, all_texts = image_features, text_features
    n = image_features.shape[0]
    # Local loss: this rank's rows against every rank's columns; the positives of row i
    # sit at column rank * n + i of the gathered matrix (ranks hold equal batch sizes).
    labels = torch.arange(n, device=image_features.device) + rank * n
    logits_per_image = scale * image_features @ all_texts.T
    logits_per_text = scale * text_features @ all_images.T
    return (
        F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)
    ) / 2


def retrieval_recall(
    image_features: torch.Tensor, text_features: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10)
) -> dict[str, float]:
    """Image->text and text->image recall@k of paired, normalised features (row i is pair i).

    Recall@k is the fraction of queries whose own pair ranks in the top k among all
    candidates (ties broken against the query). Example:
        >>> f = torch.eye(3)
        >>> retrieval_recall(f, f, ks=(1,))
        {'image_to_text_r1': 1.0, 'text_to_image_r1': 1.0}
    """
    images, texts = image_features.float(), text_features.float()
    result = {}
    for name, queries, candidates in (
        ("image_to_text", images, texts),
        ("text_to_image", texts, images),
    ):
        ranks = []
        for start in range(0, len(queries), 1024):  # blocks keep memory at 1024 x n
            sims = queries[start : start + 1024] @ candidates.T
            own = sims.diagonal(offset=start).unsqueeze(1)
            # Rank of the own pair = candidates scoring at least as high, minus itself.
            ranks.append((sims >= own).sum(dim=1) - 1)
        rank = torch.cat(ranks)
        for k in ks:
            result[f"{name}_r{k}"] = float((rank < k).float().mean())
    return result
