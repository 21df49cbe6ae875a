"""pretrain_simclr end to end on tiny images: run dir contents, embed --model RUN_DIR, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from embedsearch.encoders import load_encoder
from embedsearch.encoders.weights import load_weights_file
from embedsearch.errors import InputError, ModelError
from embedsearch.train.simclr import SimCLRTask, pretrain_simclr

TINY = {
    "image_size": 16,
    "batch_size": 8,
    "workers": 0,
    "threads": 1,
    "optimizer": "sgd",
    "lr": 0.05,
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    """One 2-epoch run on 9 images + 1 corrupt file, shared by the tests below."""
    from PIL import Image

    root = tmp_path_factory.mktemp("simclr")
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(9):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(images / f"{i}.png")
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    summary = pretrain_simclr(images, out=root / "run", epochs=2, **TINY)
    return images, root / "run", summary


def test_run_dir_has_weights_config_metrics_plot_checkpoint(trained) -> None:
    _, run, summary = trained
    config = json.loads((run / "config.json").read_text())
    assert config["family"] == "simclr" and config["image_size"] == 16 and config["small_stem"]
    assert config["embedding"].startswith("backbone features")
    assert config["training"]["temperature"] == 0.1 and config["training"]["epochs_done"] == 2
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2] and summary.epochs == 2
    assert all(r["loss"] > 0 and r["images_per_s"] > 0 and r["images"] == 8 for r in records)
    assert (run / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert (run / "checkpoint" / "state.pt").is_file()
    weights = load_weights_file(run / "model.safetensors")
    assert any(k.startswith("head.") for k in weights) and "conv1.weight" in weights


def test_corrupt_images_are_skipped_and_counted(trained) -> None:
    summary = trained[2]
    # 10 files, batch 8: each epoch visits 8; the broken file is counted whenever it is drawn.
    visits = [r["skipped_images"] for r in summary.metrics]
    assert sum(visits) >= 1 and all(v in (0, 1) for v in visits)


def test_embed_uses_the_trained_backbone(trained, tmp_path: Path) -> None:
    from embedsearch.embedding import embed
    from embedsearch.store.reader import iter_vectors

    images, run, _ = trained
    encoder = load_encoder(str(run))
    assert encoder.dim == 512 and encoder.preprocess.image_size == 16
    weights = load_weights_file(run / "model.safetensors")
    assert torch.equal(encoder.model.state_dict()["conv1.weight"], weights["conv1.weight"])
    random_init = load_encoder("simclr:resnet18", image_size=16)
    assert not torch.equal(random_init.model.state_dict()["conv1.weight"], weights["conv1.weight"])

    summary = embed(images, model=str(run), out=tmp_path / "emb", workers=0)
    assert summary.embedded == 9 and summary.failed == 1
    _, vectors = next(iter_vectors(tmp_path / "emb", batch_rows=100))
    from embedsearch.data.decode import load_image

    first = min(images.glob("*.png"))
    expected = encoder.embed_images(encoder.preprocess(load_image(first))[None])[0]
    assert np.isclose(vectors, expected, atol=1e-5).all(axis=1).any()


def test_init_starts_from_an_earlier_run(trained) -> None:
    from embedsearch.data.augment import SimCLRAugment

    images, run, _ = trained
    task = SimCLRTask(
        image_dir=images, arch="resnet18", augment=SimCLRAugment(16), temperature=0.5, seed=5
    )
    model = task.build_model()
    task.load_init(model, run)
    weights = load_weights_file(run / "model.safetensors")
    assert torch.equal(model.backbone.conv1.weight, weights["conv1.weight"])
    assert torch.equal(model.head[0].weight, weights["head.0.weight"])
    other = SimCLRTask(
        image_dir=images, arch="resnet34", augment=SimCLRAugment(16), temperature=0.5
    )
    with pytest.raises(ModelError, match="resnet34"):
        other.load_init(other.build_model(), run)


def test_user_errors_are_one_line_messages(trained, tmp_path: Path) -> None:
    images, _, _ = trained
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="contains no images"):
        pretrain_simclr(tmp_path / "empty", out=tmp_path / "a", epochs=1, **TINY)
    with pytest.raises(InputError, match="fewer than one batch"):
        pretrain_simclr(images, out=tmp_path / "b", epochs=1, **{**TINY, "batch_size": 64})
    with pytest.raises(ModelError, match="unknown --arch"):
        pretrain_simclr(images, out=tmp_path / "c", epochs=1, arch="resnet7", **TINY)


def test_cli_reports_errors_and_trains(trained, run_cli, tmp_path: Path) -> None:
    images, _, _ = trained
    bad = run_cli("pretrain", "simclr", tmp_path / "missing", "--out", tmp_path / "x")
    assert bad.exit_code == 2 and "is not a folder" in bad.stderr and "Traceback" not in bad.stderr
    ok = run_cli(
        "pretrain",
        "simclr",
        images,
        "--out",
        tmp_path / "cli-run",
        "--epochs",
        "1",
        "--image-size",
        "16",
        "--batch-size",
        "8",
        "--workers",
        "0",
        "--optimizer",
        "adamw",
    )
    assert ok.exit_code == 0, ok.stderr
    assert load_encoder(str(tmp_path / "cli-run")).dim == 512
