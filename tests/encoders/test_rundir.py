"""Run dirs: save -> load round trip for both families, and format errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from embedsearch.encoders import load_encoder
from embedsearch.encoders.rundir import save_run_dir
from embedsearch.errors import FormatError, ModelError


def test_simclr_run_dir_round_trip_keeps_weights_and_fingerprint(tmp_path) -> None:
    enc = load_encoder("simclr:resnet18", image_size=32)
    with torch.no_grad():
        for p in enc.model.parameters():
            p.add_(torch.randn_like(p) * 0.01)  # "trained" weights, unlike the seeded init
    head = {"head.0.weight": torch.randn(8, 512)}
    run = save_run_dir(
        tmp_path / "run", {**enc.config, "training": {"epochs": 1}}, enc.model.state_dict(), head
    )
    loaded = load_encoder(str(run))
    assert loaded.fingerprint == enc.fingerprint
    x = torch.randn(2, 3, 32, 32)
    np.testing.assert_allclose(loaded.embed_images(x), enc.embed_images(x), atol=1e-5)
    config = json.loads((run / "config.json").read_text())
    assert (
        config["format"] == "embedsearch-run"
        and config["family"] == "simclr"
        and config["small_stem"]
    )


def test_clip_run_dir_round_trip_with_text_tower(tmp_path) -> None:
    enc = load_encoder("tiny-clip")
    run = save_run_dir(tmp_path / "run", enc.config, enc.model.state_dict())
    loaded = load_encoder(str(run))
    assert loaded.modalities == {"image", "text"} and loaded.fingerprint == enc.fingerprint
    np.testing.assert_allclose(loaded.embed_texts(["a cat"]), enc.embed_texts(["a cat"]), atol=1e-5)


def test_run_dir_carries_its_architecture_even_if_unregistered(tmp_path) -> None:
    enc = load_encoder("tiny-clip")
    config = dict(enc.config)
    config["arch"] = "my-custom-clip"  # a name open_clip has never heard of
    run = save_run_dir(tmp_path / "run", config, enc.model.state_dict())
    assert load_encoder(str(run)).dim == 128


def test_folder_that_is_not_a_run_dir_is_refused(tmp_path) -> None:
    with pytest.raises(ModelError, match="not a run dir"):
        load_encoder(str(tmp_path))


def test_run_dir_with_foreign_config_is_refused(tmp_path) -> None:
    enc = load_encoder("simclr:resnet18", image_size=32)
    run = save_run_dir(tmp_path / "run", enc.config, enc.model.state_dict())
    (run / "config.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(FormatError, match="not an embedsearch run config"):
        load_encoder(str(run))
