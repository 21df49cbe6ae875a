"""Caption-word prediction: an auxiliary CLIP loss that makes the image tower name what it sees.

Contrastive training needs an attribute only when it tells a caption apart from the other
captions of its batch. A small CLIP trained from scratch therefore learns what is easy to see
(colour, position) first and the rest late: after ``pretrain clip``'s 10 epochs on the demo's
shapes, a linear probe read the shape off tiny-clip's image vectors for 0.58 of held-out
images (chance 0.2), although the same tower learns shape to 0.97 in as many steps when it is
told the shape. Asking each image's embedding which words its caption holds gives every image
a signal for every word of its caption, whatever else the batch holds -- the objective
SuperClass (Huang et al. 2024) trains on alone. With this loss beside the contrastive one the
probe reads 0.93 in the same CPU time (``benchmarks/RESULTS.md``, issue 20).

The head predicts the tokens of the training captions (of the first 100,000: rarer tokens go
unpredicted), not the start, end or padding token. The loss of a batch: its candidate words are
the distinct head tokens of its captions; the head scores every candidate from each image's
normalised embedding; binary cross-entropy against "this caption holds this token", summed
over candidates and averaged over images. The head trains with the model and is left out of
the run dir, so the exported model is a plain open_clip CLIP.

Example:
    >>> head = CaptionWordHead(words=torch.tensor([5, 7, 9]), embed_dim=8)
    >>> image = torch.nn.functional.normalize(torch.randn(2, 8), dim=-1)
    >>> tokens = torch.tensor([[98, 5, 7, 99, 0], [98, 5, 9, 99, 0]])
    >>> bool(head(image, tokens) > 0)
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# The head reads unit vectors, whose entries are about 1/sqrt(dim): scaled up, its logits have
# a useful range from the first step (as CLIP's own logit scale does for cosines).
FEATURE_SCALE = 30.0
# Captions read to find the head's words (tokenizing is ~20,000 captions/s on one core).
VOCAB_SAMPLE = 100_000


class CaptionWordHead(nn.Module):
    """Scores, from an image embedding, whether its caption holds each word of the batch.

    Args:
        words: the sorted token ids the head predicts (a buffer: checkpoints keep them).
        embed_dim: the CLIP embedding width.
    """

    words: torch.Tensor  # the buffer registered below, typed for readers and mypy

    def __init__(self, words: torch.Tensor, embed_dim: int) -> None:
        super().__init__()
        bound = embed_dim**-0.5  # nn.Linear's initialisation, one row per word
        self.register_buffer("words", words.long())
        self.weight = nn.Parameter(torch.empty(len(words), embed_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(len(words)))

    def forward(self, image_features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Summed binary cross-entropy over the batch's words, averaged over its images."""
        if len(self.words) == 0:  # captions of special tokens only: nothing to learn
            return image_features.sum() * 0.0
        rows = _positions(self.words, tokens)  # each token's head row, -1 if not a head word
        candidates = rows[rows >= 0].unique()  # sorted
        if len(candidates) == 0:  # no caption of the batch holds a head word: no NaN
            return image_features.sum() * 0.0
        logits = FEATURE_SCALE * image_features.float() @ self.weight[candidates].T
        logits = logits + self.bias[candidates]
        # Which candidates each caption holds, without a (batch, length, candidates) tensor:
        # a token that is no head word (-1) lands in one extra column, dropped below.
        column = _positions(candidates, rows)
        column = column.masked_fill(column < 0, len(candidates))
        holds = torch.zeros(len(tokens), len(candidates) + 1, device=logits.device)
        holds.scatter_(1, column, 1.0)
        return F.binary_cross_entropy_with_logits(logits, holds[:, :-1], reduction="sum") / len(
            tokens
        )


def _positions(sorted_values: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Index of each query in ``sorted_values`` (binary search), -1 where it is absent."""
    at = torch.searchsorted(sorted_values, queries).clamp(max=len(sorted_values) - 1)
    return torch.where(sorted_values[at] == queries, at, -1)


class ClipWithCaptionWords(nn.Module):
    """An open_clip CLIP and its caption-word head; ``forward`` also returns the word loss.

    The head is called inside ``forward`` so that DDP sees it as part of the model.
    """

    def __init__(self, clip: nn.Module, head: CaptionWordHead) -> None:
        super().__init__()
        self.clip, self.head = clip, head

    def forward(
        self, pixels: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        image_features, text_features, scale = self.clip(pixels, tokens)[:3]
        return image_features, text_features, scale, self.head(image_features, tokens)


def word_head_for(tokenizer: Any, captions: Sequence[str], embed_dim: int) -> CaptionWordHead:
    """A seeded head for the words of ``captions`` under an open_clip tokenizer (BPE or HF)."""
    inner = getattr(tokenizer, "tokenizer", None)  # HFTokenizer / SigLipTokenizer wrap one
    if inner is not None:
        not_words = {0, *inner.all_special_ids}
    else:  # open_clip's BPE tokenizer; 0 pads its captions
        not_words = {0, tokenizer.sot_token_id, tokenizer.eot_token_id}
    seen: set[int] = set()
    sample = captions[:VOCAB_SAMPLE]
    for start in range(0, len(sample), 10_000):
        seen.update(tokenizer(list(sample[start : start + 10_000])).unique().tolist())
    words = torch.tensor(sorted(seen - not_words), dtype=torch.long)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the head's init is part of the seeded model
        return CaptionWordHead(words, embed_dim)


def clip_of(model: nn.Module) -> nn.Module:
    """The open_clip CLIP inside ``model`` (itself when no head is attached)."""
    return model.clip if isinstance(model, ClipWithCaptionWords) else model
