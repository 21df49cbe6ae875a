"""Issue 17 items 2 and 9: untrained and barely trained models say so where the user looks;
one default input size per model."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import pytest

from embedsearch.encoders import load_encoder
from embedsearch.encoders.rundir import save_run_dir

TRAINED = {"epochs_done": 3, "loss_first": 3.0, "loss_last": 1.0}


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "embedsearch"]


@pytest.mark.parametrize("spec", ["tiny-clip", "simclr:resnet18"])
def test_untrained_spec_logs_one_warning(spec, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        load_encoder(spec)
    assert [w for w in _warnings(caplog) if "untrained" in w] == [
        f"warning: {spec} is untrained (random weights): its vectors and hits mean nothing; "
        "use openclip:ARCH/PRETRAINED or a run dir from `embedsearch pretrain`"
    ]


def test_untrained_spec_is_marked_untrained() -> None:
    assert load_encoder("tiny-clip").trained is False


def test_run_dir_with_a_training_record_is_trained(tmp_path) -> None:
    encoder = load_encoder("tiny-clip")
    config = replace(encoder.config, training=TRAINED)
    save_run_dir(tmp_path / "run", config, encoder.model.state_dict())
    assert load_encoder(str(tmp_path / "run")).trained is True


def test_trained_run_dir_logs_no_warning(tmp_path, caplog) -> None:
    encoder = load_encoder("tiny-clip")
    save_run_dir(
        tmp_path / "run", replace(encoder.config, training=TRAINED), encoder.model.state_dict()
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_encoder(str(tmp_path / "run"))
    assert _warnings(caplog) == []


def test_barely_trained_run_dir_says_so(tmp_path, caplog) -> None:
    encoder = load_encoder("tiny-clip")
    training = {"epochs_done": 2, "loss_first": 6.10, "loss_last": 6.02}
    save_run_dir(
        tmp_path / "run", replace(encoder.config, training=training), encoder.model.state_dict()
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_encoder(str(tmp_path / "run"))
    assert any("barely trained (loss 6.100 -> 6.020 over 2" in w for w in _warnings(caplog))


def test_barely_trained_run_dir_of_an_older_release_is_read_from_metrics(tmp_path) -> None:
    from embedsearch.encoders.rundir import RunConfig, loss_progress

    (tmp_path / "metrics.jsonl").write_text(
        "\n".join(json.dumps({"epoch": e, "loss": v}) for e, v in ((1, 6.1), (2, 6.05)))
    )
    config = RunConfig(
        family="simclr",
        arch="resnet18",
        image_size=32,
        mean=[0.5] * 3,
        std=[0.25] * 3,
        dim=512,
        modalities=["image"],
        training={"epochs_done": 2},
    )
    progress = loss_progress(config, tmp_path)
    assert progress is not None and progress.barely_moved


def test_loading_a_clip_model_leaves_root_logging_unconfigured(monkeypatch) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # a host that configured nothing (pytest has)
    load_encoder("tiny-clip")
    assert root.handlers == []


def test_open_clip_random_init_notice_is_passed_on(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        load_encoder("tiny-clip")
    notices = [r.getMessage() for r in caplog.records if r.name == "embedsearch.open_clip"]
    assert notices == [
        "open_clip: No pretrained weights loaded for model 'tiny-clip'. Model initialized randomly."
    ]


def test_clip_run_dir_does_not_claim_random_init(tmp_path, caplog) -> None:
    encoder = load_encoder("tiny-clip")
    save_run_dir(
        tmp_path / "run", replace(encoder.config, training=TRAINED), encoder.model.state_dict()
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_encoder(str(tmp_path / "run"))
    assert not [r for r in caplog.records if "initialized randomly" in r.getMessage()]


def test_pretrain_default_size_is_embeds_default() -> None:
    from embedsearch.train.presets import PRESETS

    assert load_encoder("simclr:resnet18").preprocess.image_size == PRESETS["general"].image_size


def test_pretrain_records_the_first_and_last_epoch_loss(tmp_path) -> None:
    import numpy as np
    from PIL import Image

    from embedsearch.train.simclr import pretrain_simclr

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(images / f"{i}.png")
    tiny = {"image_size": 16, "batch_size": 8, "workers": 0, "threads": 1, "optimizer": "sgd"}
    pretrain_simclr(images, out=tmp_path / "run", epochs=2, lr=0.05, **tiny)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "metrics.jsonl").open()]
    training = config["training"]
    assert (training["loss_first"], training["loss_last"]) == (losses[0], losses[-1])
