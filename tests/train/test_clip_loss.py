"""The CLIP loss against reference implementations, and gather/local-loss equality on 2 ranks."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from embedsearch.train.clip_loss import LOGIT_SCALE_MAX, clip_loss, retrieval_recall


def _features(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = F.normalize(torch.randn(n, d, generator=g), dim=-1)
    texts = F.normalize(images + 0.8 * torch.randn(n, d, generator=g), dim=-1)
    return images, texts


def _naive_loss(images: torch.Tensor, texts: torch.Tensor, scale: float) -> float:
    """Row-by-row softmax cross-entropy in plain Python: the textbook definition."""
    n = len(images)
    total = 0.0
    for a, b in ((images, texts), (texts, images)):
        for i in range(n):
            logits = [scale * float(a[i] @ b[j]) for j in range(n)]
            top = max(logits)
            log_sum = top + math.log(sum(math.exp(x - top) for x in logits))
            total += (log_sum - logits[i]) / n
    return total / 2


def test_loss_matches_textbook_definition() -> None:
    images, texts = _features(12, 16, seed=0)
    log_scale = torch.tensor(math.log(1 / 0.07))
    expected = _naive_loss(images, texts, 1 / 0.07)
    assert float(clip_loss(images, texts, log_scale)) == pytest.approx(expected, rel=1e-5)


def test_loss_and_gradients_match_open_clip() -> None:
    from open_clip.loss import ClipLoss

    images, texts = _features(16, 32, seed=1)
    ours_i, ours_t = images.clone().requires_grad_(), texts.clone().requires_grad_()
    ref_i, ref_t = images.clone().requires_grad_(), texts.clone().requires_grad_()
    log_scale = torch.tensor(2.5, requires_grad=True)
    ours = clip_loss(ours_i, ours_t, log_scale)
    ref = ClipLoss()(ref_i, ref_t, log_scale.detach().exp())
    ours.backward()
    ref.backward()
    assert float(ours.detach()) == pytest.approx(float(ref.detach()), rel=1e-6)
    torch.testing.assert_close(ours_i.grad, ref_i.grad)
    torch.testing.assert_close(ours_t.grad, ref_t.grad)
    assert log_scale.grad is not None and float(log_scale.grad) != 0.0


def test_logit_scale_is_clamped_at_100() -> None:
    images, texts = _features(8, 16, seed=2)
    above = torch.tensor(LOGIT_SCALE_MAX + 1.0, requires_grad=True)
    loss = clip_loss(images, texts, above)
    loss.backward()
    at_max = clip_loss(images, texts, torch.tensor(LOGIT_SCALE_MAX))
    assert float(loss.detach()) == pytest.approx(float(at_max))
    assert float(above.grad) == 0.0  # no push beyond the clamp


def test_perfectly_aligned_pairs_have_lower_loss_than_shuffled() -> None:
    images, texts = _features(16, 32, seed=3)
    scale = torch.tensor(math.log(1 / 0.07))
    aligned = clip_loss(images, texts, scale)
    shuffled = clip_loss(
        images, texts[torch.randperm(16, generator=torch.Generator().manual_seed(0))], scale
    )
    assert float(aligned) < float(shuffled)


def test_retrieval_recall_matches_brute_force_ranking() -> None:
    images, texts = _features(1100, 8, seed=4)  # > one 1024-row block
    recall = retrieval_recall(images, texts, ks=(1, 5))
    sims = images @ texts.T
    for name, matrix in (("image_to_text", sims), ("text_to_image", sims.T)):
        order = matrix.argsort(dim=1, descending=True)
        position = (order == torch.arange(len(matrix))[:, None]).float().argmax(dim=1)
        for k in (1, 5):
            assert recall[f"{name}_r{k}"] == pytest.approx(float((position < k).float().mean()))
    assert 0.0 < recall["text_to_image_r5"] < 1.0


# -- two CPU ranks -------------------------------------------------------------------------


def _rank_step(rank: int, world: int, init_file: str, out_dir: str) -> None:
    """One rank: its half of the batch through a shared linear 'encoder', loss, DDP-style grads."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        images, texts, encoder, log_scale = _problem()
        n = len(images) // world
        rows = slice(rank * n, (rank + 1) * n)
        loss = clip_loss(
            F.normalize(encoder(images[rows]), dim=-1),
            F.normalize(encoder(texts[rows]), dim=-1),
            log_scale,
        )
        loss.backward()
        grads = [p.grad for p in (*encoder.parameters(), log_scale)]
        for grad in grads:  # what DistributedDataParallel does: average gradients over ranks
            dist.all_reduce(grad)
            grad /= world
        loss_total = loss.detach().clone()
        dist.all_reduce(loss_total)
        torch.save({"loss": loss_total / world, "grads": grads}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _problem() -> tuple[torch.Tensor, torch.Tensor, torch.nn.Linear, torch.Tensor]:
    torch.manual_seed(0)
    images, texts = torch.randn(8, 6), torch.randn(8, 6)
    encoder = torch.nn.Linear(6, 4)
    return images, texts, encoder, torch.tensor(math.log(1 / 0.07), requires_grad=True)


def test_gathered_local_loss_on_two_ranks_equals_full_batch(tmp_path: Path) -> None:
    # Two real processes joined by gloo (this file is their script, see the bottom).
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [str(tmp_path / "init"), str(tmp_path)]
    ranks = [
        subprocess.Popen([sys.executable, __file__, str(r), "2", *args], env=env) for r in range(2)
    ]
    assert [p.wait(timeout=120) for p in ranks] == [0, 0]

    images, texts, encoder, log_scale = _problem()
    full = clip_loss(
        F.normalize(encoder(images), dim=-1), F.normalize(encoder(texts), dim=-1), log_scale
    )
    full.backward()
    expected = [p.grad for p in (*encoder.parameters(), log_scale)]
    for rank in range(2):
        result = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert float(result["loss"].detach()) == pytest.approx(float(full.detach()), rel=1e-5)
        for got, want in zip(result["grads"], expected, strict=False):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


if __name__ == "__main__":
    _rank_step(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
