"""CLIP training on the shared loop: run dirs that work as models, resume, init, fine-tuning,
bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from embedsearch.data.shapes import make_shapes_corpus
from embedsearch.encoders import load_encoder
from embedsearch.encoders.weights import load_weights_file
from embedsearch.errors import InputError, ModelError
from embedsearch.train.clip import ClipTask, pretrain_clip
from embedsearch.train.loop import TrainingInterrupted
from embedsearch.train.metrics import read_metrics

TINY = {"batch_size": 8, "threads": 1, "workers": 0, "val_fraction": 0.25, "warmup_epochs": 0.5}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_shapes_corpus(tmp_path_factory.mktemp("clip") / "shapes", n=32, seed=0).pairs


@pytest.fixture(scope="module")
def one_epoch(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("run") / "run"
    return out, pretrain_clip(corpus, out=out, epochs=1, **TINY)


def test_run_dir_is_a_text_and_image_model(one_epoch, corpus: Path) -> None:
    out, result = one_epoch
    assert (result.train_pairs, result.val_pairs) == (24, 8)
    assert result.pairs.summary() == "32 of 32 pairs used"
    record = read_metrics(out)[0]
    for key in ("eval_text_to_image_r1", "eval_text_to_image_r5", "eval_image_to_text_r10"):
        assert 0.0 <= record[key] <= 1.0
    assert record["eval_text_to_image_r10"] >= record["eval_text_to_image_r1"]
    assert (out / "loss.png").stat().st_size > 0

    trained = load_encoder(str(out))
    assert trained.modalities == frozenset({"image", "text"})
    assert trained.dim == 128
    texts = trained.embed_texts(["a red circle in the center", "a blue star"])
    assert texts.shape == (2, 128)
    assert np.allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)
    # Training moved the weights away from the seeded random init of tiny-clip.
    initial = load_encoder("tiny-clip")
    assert trained.fingerprint != initial.fingerprint
    assert not np.allclose(
        texts, initial.embed_texts(["a red circle in the center", "a blue star"])
    )
    assert trained.config.arch == "tiny-clip"
    training = json.loads((out / "config.json").read_text())["training"]
    assert training["objective"] == "clip"
    assert training["optimizer"] == "adamw"


def test_no_weight_decay_on_gains_biases_and_logit_scale(corpus: Path, one_epoch) -> None:
    from embedsearch.data.pairs import load_pairs

    pairs = load_pairs(corpus)
    task = ClipTask(pairs, pairs.subset([]), "tiny-clip")
    model = task.build_model()
    excluded = {name for name, p in model.named_parameters() if task.exclude_from_decay(name, p)}
    assert "logit_scale" in excluded
    assert "visual.bn1.weight" in excluded
    assert "transformer.resblocks.0.attn.in_proj_bias" in excluded
    assert "visual.layer1.0.conv2.weight" not in excluded
    # tiny-clip starts at the temperature its config names (1/7, not CLIP's 1/14.3; issue 20)
    from embedsearch.encoders.openclip import shipped_config

    config = shipped_config("tiny-clip")
    assert config is not None and config["init_logit_scale"] != pytest.approx(math.log(1 / 0.07))
    assert float(model.logit_scale.detach()) == pytest.approx(config["init_logit_scale"], rel=1e-5)


def test_interrupted_then_resumed_equals_uninterrupted(
    corpus: Path, tmp_path: Path, ctrl_c_after
) -> None:
    straight = pretrain_clip(corpus, out=tmp_path / "straight", epochs=2, **TINY)
    # 3 steps per epoch (24 train pairs / 8): stop one step into epoch 2.
    with pytest.raises(TrainingInterrupted):
        pretrain_clip(corpus, out=tmp_path / "split", epochs=2, progress=ctrl_c_after(4), **TINY)
    resumed = pretrain_clip(corpus, out=tmp_path / "split", epochs=2, resume=True, **TINY)
    assert resumed.train.steps == straight.train.steps == 6
    a = load_weights_file(tmp_path / "straight" / "model.safetensors")
    b = load_weights_file(tmp_path / "split" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert [r["eval_text_to_image_r5"] for r in read_metrics(tmp_path / "split")] == pytest.approx(
        [r["eval_text_to_image_r5"] for r in straight.train.metrics]
    )


def test_pretrained_file_and_init_start_from_given_weights(
    one_epoch, corpus: Path, tmp_path: Path
) -> None:
    out, _ = one_epoch
    start = load_weights_file(out / "model.safetensors")
    # --pretrained PATH: a plain state dict file (here: the one-epoch weights), lr 0 keeps them.
    torch.save(dict(start), tmp_path / "weights.pt")
    kept = pretrain_clip(
        corpus,
        out=tmp_path / "ft",
        epochs=1,
        pretrained=str(tmp_path / "weights.pt"),
        lr=0.0,
        **TINY,
    )
    assert kept.train.epochs == 1
    after = load_weights_file(tmp_path / "ft" / "model.safetensors")
    # BatchNorm's running statistics follow the data even at lr 0; the learned weights stay.
    learned = [k for k in start if not k.endswith(("running_mean", "running_var", "_tracked"))]
    assert all(torch.equal(start[k], after[k]) for k in learned)
    # --init RUN_DIR continues training from the run's weights: they move, but start there.
    pretrain_clip(corpus, out=tmp_path / "cont", epochs=1, init=out, lr=1e-4, **TINY)
    moved = load_weights_file(tmp_path / "cont" / "model.safetensors")
    diffs = [float((moved[k] - start[k]).abs().max()) for k in learned]
    assert 0 < max(diffs) < 0.05


def test_bad_model_and_weights_are_one_line_errors(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown open_clip architecture"):
        pretrain_clip(corpus, out=tmp_path / "a", model="NoSuchNet", **TINY)
    torch.save({"nope": torch.zeros(2)}, tmp_path / "bad.pt")
    with pytest.raises(ModelError, match="do not fit tiny-clip"):
        pretrain_clip(corpus, out=tmp_path / "b", pretrained=str(tmp_path / "bad.pt"), **TINY)
    with pytest.raises(InputError, match="either --pretrained or --init"):
        pretrain_clip(corpus, out=tmp_path / "c", pretrained="x", init=tmp_path, **TINY)


def test_unreadable_images_at_training_time_are_replaced_and_counted(tmp_path: Path) -> None:
    corpus = make_shapes_corpus(tmp_path / "shapes", n=20, seed=1)
    # Truncate two PNGs after the header: the loading check passes, decoding fails.
    for name in ("00002.png", "00005.png"):
        path = corpus.images / name
        path.write_bytes(path.read_bytes()[:60])
    result = pretrain_clip(
        corpus.pairs, out=tmp_path / "run", epochs=1, **{**TINY, "val_fraction": 0.0}
    )
    assert result.pairs.kept == 20
    assert result.skipped_images >= 1  # each broken pair drawn in the epoch was replaced
    training = json.loads((tmp_path / "run" / "config.json").read_text())["training"]
    assert training["skipped_images"] == result.skipped_images


def test_cli_trains_and_reports(corpus: Path, tmp_path: Path, run_cli) -> None:
    bad = run_cli("pretrain", "clip", corpus, "--out", tmp_path / "x", "--text-col", "descr")
    assert bad.exit_code == 2
    assert "no column 'descr' (--text-col); columns present: filepath, caption" in bad.stderr
    result = run_cli(
        "pretrain",
        "clip",
        corpus,
        "--out",
        tmp_path / "run",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--workers",
        "0",
        "--threads",
        "1",
        "--val-fraction",
        "0.25",
    )
    assert result.exit_code == 0, result.stderr
    assert "32 of 32 pairs used" in result.stderr
    assert "text→image R@5" in result.stderr
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_run_dir_embeds_texts_with_the_embed_command(one_epoch, tmp_path: Path, run_cli) -> None:
    out, _ = one_epoch
    (tmp_path / "queries.txt").write_text("a red circle\na big blue square\n")
    result = run_cli("embed", tmp_path / "queries.txt", "--model", out, "--out", tmp_path / "emb")
    assert result.exit_code == 0, result.stderr
    from embedsearch.store.reader import iter_vectors

    blocks = list(iter_vectors(tmp_path / "emb"))
    vectors = np.concatenate([v for _, v in blocks])
    expected = load_encoder(str(out)).embed_texts(["a red circle", "a big blue square"])
    assert np.allclose(vectors, expected, atol=1e-5)


def test_trained_run_dir_loads_in_open_clip_alone_with_the_same_vectors(
    one_epoch, corpus: Path
) -> None:
    import open_clip
    from PIL import Image

    out, _ = one_epoch
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{out}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{out}")
    ours = load_encoder(str(out))
    image = Image.open(corpus.parent / "images" / "00000.png").convert("RGB")
    with torch.no_grad():
        theirs_text = model.eval().encode_text(tokenizer(["a red circle"]))
        theirs_image = model.encode_image(preprocess(image).unsqueeze(0))
    text_cos = (
        torch.nn.functional.normalize(theirs_text, dim=-1)[0].numpy()
        @ ours.embed_texts(["a red circle"])[0]
    )
    image_cos = (
        torch.nn.functional.normalize(theirs_image, dim=-1)[0].numpy()
        @ ours.embed_images(ours.preprocess(image).unsqueeze(0))[0]
    )
    assert min(text_cos, image_cos) >= 0.9999


def test_batch_norm_statistics_span_every_rank_by_default(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tiny-clip's tower has BatchNorm: per-rank statistics would make torchrun train another
    # model than one process on the same global batch.
    import embedsearch.train.clip as clip_module

    seen = {}

    def record(task: object, config: object, progress: object) -> None:
        seen["config"] = config
        raise KeyboardInterrupt  # stop before any training

    monkeypatch.setattr(clip_module, "train", record)
    with pytest.raises(KeyboardInterrupt):
        pretrain_clip(corpus, out=tmp_path / "run", epochs=1, **TINY)
    assert seen["config"].sync_bn is True
