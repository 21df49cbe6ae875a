"""Run dirs: save -> load round trip for both families, and format errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from embedsearch.encoders import load_encoder
from embedsearch.encoders.rundir import RunConfig, save_run_dir
from embedsearch.errors import FormatError, ModelError

DATA = Path(__file__).parent / "data"


def test_simclr_run_dir_round_trip_keeps_weights_and_fingerprint(tmp_path) -> None:
    enc = load_encoder("simclr:resnet18", image_size=32)
    with torch.no_grad():
        for p in enc.model.parameters():
            p.add_(torch.randn_like(p) * 0.01)  # "trained" weights, unlike the seeded init
    head = {"head.0.weight": torch.randn(8, 512)}
    config = dataclasses.replace(enc.config, training={"epochs": 1})
    run = save_run_dir(tmp_path / "run", config, enc.model.state_dict(), head)
    loaded = load_encoder(str(run))
    assert loaded.fingerprint == enc.fingerprint
    x = torch.randn(2, 3, 32, 32)
    np.testing.assert_allclose(loaded.embed_images(x), enc.embed_images(x), atol=1e-5)
    written = json.loads((run / "config.json").read_text())
    assert written["format"] == "embedsearch-run"
    assert written["family"] == "simclr"
    assert written["small_stem"] is True


def test_clip_run_dir_round_trip_with_text_tower(tmp_path) -> None:
    enc = load_encoder("tiny-clip")
    run = save_run_dir(tmp_path / "run", enc.config, enc.model.state_dict())
    loaded = load_encoder(str(run))
    assert loaded.modalities == {"image", "text"}
    assert loaded.fingerprint == enc.fingerprint
    np.testing.assert_allclose(loaded.embed_texts(["a cat"]), enc.embed_texts(["a cat"]), atol=1e-5)


def test_run_dir_carries_its_architecture_even_if_unregistered(tmp_path) -> None:
    enc = load_encoder("tiny-clip")
    config = dataclasses.replace(enc.config, arch="my-custom-clip")  # unknown to open_clip
    run = save_run_dir(tmp_path / "run", config, enc.model.state_dict())
    assert load_encoder(str(run)).dim == 128


def test_folder_that_is_not_a_run_dir_is_refused(tmp_path) -> None:
    with pytest.raises(ModelError, match="not a run dir"):
        load_encoder(str(tmp_path))


def test_run_dir_with_foreign_config_is_refused(tmp_path) -> None:
    enc = load_encoder("simclr:resnet18", image_size=32)
    run = save_run_dir(tmp_path / "run", enc.config, enc.model.state_dict())
    (run / "config.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(FormatError, match="not an embedsearch-run file"):
        load_encoder(str(run))


@pytest.mark.parametrize("name", ["config_v1.json", "config_clip_v1.json"])
def test_config_written_by_the_first_release_rewrites_to_the_same_json(name, tmp_path) -> None:
    original = json.loads((DATA / name).read_text())
    RunConfig.read(DATA / name).write(tmp_path / "config.json")
    assert json.loads((tmp_path / "config.json").read_text()) == original


def test_config_of_the_first_release_is_typed() -> None:
    config = RunConfig.read(DATA / "config_v1.json")
    assert config.training is not None
    assert config.training["objective"] == "simclr"
    assert config.small_stem is True


def test_config_that_is_not_json_is_one_format_error(tmp_path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(FormatError, match="config.json is not valid JSON"):
        RunConfig.read(tmp_path / "config.json")


def test_config_of_an_unknown_family_is_refused(tmp_path) -> None:
    config = json.loads((DATA / "config_v1.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "family": "dino"}))
    with pytest.raises(FormatError, match="unknown model family 'dino'"):
        RunConfig.read(tmp_path / "config.json")
