"""The caption-word loss: what it scores, and that it stays out of the exported model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from embedsearch.data.shapes import make_shapes_corpus
from embedsearch.encoders.weights import load_weights_file
from embedsearch.errors import InputError
from embedsearch.train.caption_words import FEATURE_SCALE, CaptionWordHead, word_head_for
from embedsearch.train.clip import WORD_LOSS_FROM_SCRATCH, pretrain_clip

TINY = {"batch_size": 8, "threads": 1, "workers": 0, "val_fraction": 0.25, "warmup_epochs": 0.5}
START, END = 98, 99


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_shapes_corpus(tmp_path_factory.mktemp("words") / "shapes", n=32, seed=0).pairs


def _head() -> CaptionWordHead:
    torch.manual_seed(0)
    return CaptionWordHead(words=torch.tensor([5, 7, 9, 11, 13]), embed_dim=8)


def test_loss_is_the_summed_cross_entropy_over_the_batch_words() -> None:
    head = _head()
    image = F.normalize(torch.randn(3, 8), dim=-1)
    # 42 is no head word (a token the head never saw), 98/99/0 are start, end and padding.
    tokens = torch.tensor(
        [[START, 5, 7, 7, END, 0], [START, 5, 9, 42, END, 0], [START, 11, END, 0, 0, 0]]
    )
    rows = [0, 1, 2, 3]  # words 5, 7, 9, 11: the batch's head words (13 is in no caption)
    holds = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float32)
    logits = FEATURE_SCALE * image @ head.weight[rows].T + head.bias[rows]
    expected = F.binary_cross_entropy_with_logits(logits, holds, reduction="sum") / 3
    assert torch.allclose(head(image, tokens), expected)


def test_words_outside_the_batch_get_no_gradient() -> None:
    head = _head()
    head(F.normalize(torch.randn(1, 8), dim=-1), torch.tensor([[START, 5, 9, END, 0]])).backward()
    assert head.weight.grad is not None
    touched = set(torch.nonzero(head.weight.grad.abs().sum(1)).flatten().tolist())
    assert touched == {0, 2}  # the rows of words 5 and 9


def test_a_batch_without_head_words_costs_nothing() -> None:
    image = F.normalize(torch.randn(2, 8), dim=-1).requires_grad_()
    loss = _head()(image, torch.tensor([[START, 42, END], [START, 43, END]]))
    loss.backward()
    assert (float(loss.detach()), image.grad is not None) == (0.0, True)


def test_a_head_without_words_costs_nothing() -> None:
    head = CaptionWordHead(words=torch.tensor([], dtype=torch.long), embed_dim=8)
    loss = head(F.normalize(torch.randn(2, 8), dim=-1), torch.tensor([[START, 5, END]] * 2))
    assert float(loss) == 0.0


def test_head_words_are_the_training_captions_tokens_without_specials() -> None:
    import open_clip

    tokenizer = open_clip.get_tokenizer("RN50")
    head = word_head_for(tokenizer, ["a red star", "a blue star"], embed_dim=8)
    expected = sorted({*tokenizer.encode("a red star"), *tokenizer.encode("a blue star")})
    assert head.words.tolist() == expected


def test_run_dir_holds_the_clip_weights_only(corpus: Path, tmp_path: Path) -> None:
    import open_clip

    from embedsearch.encoders.openclip import shipped_config

    pretrain_clip(corpus, out=tmp_path / "run", epochs=1, **TINY)
    saved = set(load_weights_file(tmp_path / "run" / "model.safetensors"))
    config = shipped_config("tiny-clip")
    assert config is not None
    assert saved == set(open_clip.model.CLIP(**config).state_dict())


def test_recipe_records_the_word_loss_on_from_scratch_and_off_when_asked(
    corpus: Path, tmp_path: Path
) -> None:
    import json

    pretrain_clip(corpus, out=tmp_path / "on", epochs=1, **TINY)
    pretrain_clip(corpus, out=tmp_path / "off", epochs=1, word_loss=0.0, **TINY)
    recipes = [
        json.loads((tmp_path / name / "config.json").read_text())["training"]["word_loss"]
        for name in ("on", "off")
    ]
    assert recipes == [WORD_LOSS_FROM_SCRATCH, 0.0]


def test_negative_weight_is_refused(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--word-loss"):
        pretrain_clip(corpus, out=tmp_path / "run", word_loss=-1.0, **TINY)


def test_cli_word_loss_reaches_the_recipe_and_a_negative_one_is_a_one_line_error(
    corpus: Path, tmp_path: Path, run_cli
) -> None:
    import json

    common = ["--epochs", "1", "--batch-size", "8", "--workers", "0", "--threads", "1"]
    done = run_cli(
        "pretrain", "clip", corpus, "--out", tmp_path / "run", "--word-loss", "0.25", *common
    )
    assert done.exit_code == 0, done.stderr
    training = json.loads((tmp_path / "run" / "config.json").read_text())["training"]
    assert training["word_loss"] == 0.25
    bad = run_cli(
        "pretrain", "clip", corpus, "--out", tmp_path / "bad", "--word-loss", "-1", *common
    )
    assert (bad.exit_code, bad.stderr.count("\n")) == (2, 1)
    assert "--word-loss must be 0 (off) or more" in bad.stderr


def test_resuming_with_the_word_loss_switched_is_refused_by_name(
    corpus: Path, tmp_path: Path
) -> None:
    pretrain_clip(corpus, out=tmp_path / "run", epochs=1, word_loss=0.0, **TINY)
    with pytest.raises(InputError, match="--resume: the checkpoint .* holds another model"):
        pretrain_clip(corpus, out=tmp_path / "run", epochs=2, resume=True, **TINY)


def test_metrics_split_the_loss_into_its_contrastive_and_word_parts(
    corpus: Path, tmp_path: Path
) -> None:
    from embedsearch.train.metrics import read_metrics

    pretrain_clip(corpus, out=tmp_path / "run", epochs=1, **TINY)
    record = read_metrics(tmp_path / "run")[0]
    parts = record["loss_contrastive"] + record["loss_words"]
    assert parts == pytest.approx(record["loss"], rel=1e-4)
