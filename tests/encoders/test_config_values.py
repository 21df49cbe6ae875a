"""Absurd ``config.json`` values in a run dir are refused on read, in one line."""

from __future__ import annotations

import json

import pytest

from embedsearch.encoders import load_encoder
from embedsearch.encoders.rundir import save_run_dir
from embedsearch.errors import FormatError, ModelError


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    enc = load_encoder("simclr:resnet18", image_size=32)
    return save_run_dir(tmp_path_factory.mktemp("run") / "run", enc.config, enc.model.state_dict())


def _edited(run_dir, tmp_path, **values):
    import shutil

    copy = tmp_path / "edited"
    shutil.copytree(run_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    config.update(values)
    (copy / "config.json").write_text(json.dumps(config))
    return copy


@pytest.mark.parametrize(
    "values, words",
    [
        ({"dim": -1}, "dim must be an integer"),
        ({"dim": "512"}, "dim must be an integer"),
        ({"std": [0, 0, 0]}, "std must be 3 finite numbers, each > 0"),
        ({"std": [0.2, None, 0.2]}, "std must be 3 finite numbers"),
        ({"mean": [0.5]}, "mean must be 3 finite numbers"),
        ({"image_size": 0}, "image_size must be an integer"),
        ({"modalities": ["sound"]}, "modalities must be a non-empty list"),
    ],
)
def test_absurd_values_are_a_format_error(run_dir, tmp_path, values, words) -> None:
    with pytest.raises(FormatError, match=words):
        load_encoder(str(_edited(run_dir, tmp_path, **values)))


def test_dim_that_the_model_does_not_produce_is_refused(run_dir, tmp_path) -> None:
    with pytest.raises(ModelError, match="says dim 7, but its model produces 512-d vectors"):
        load_encoder(str(_edited(run_dir, tmp_path, dim=7)))


def test_std_zero_never_writes_nan_vectors(run_dir, tmp_path, run_cli, make_images) -> None:
    make_images(tmp_path / "imgs", 2)
    model = _edited(run_dir, tmp_path, std=[0, 0, 0])
    result = run_cli("embed", tmp_path / "imgs", "--model", model, "--out", tmp_path / "e")
    assert (result.exit_code, result.stderr.count("\n")) == (2, 1)


def test_clip_run_dir_dim_is_checked_against_its_projection(tmp_path) -> None:
    enc = load_encoder("tiny-clip")
    run = save_run_dir(tmp_path / "clip", enc.config, enc.model.state_dict())
    with pytest.raises(ModelError, match=f"says dim 7, but its model produces {enc.dim}-d"):
        load_encoder(str(_edited(run, tmp_path, dim=7)))


def test_loading_a_run_dir_runs_no_forward_pass(run_dir, monkeypatch) -> None:
    # A forward pass at load time cost every query's start-up seconds (issue 17.3).
    from embedsearch.encoders.base import Encoder

    def refuse(*args, **kwargs):
        raise AssertionError("forward pass at load time")

    monkeypatch.setattr(Encoder, "embed_images", refuse)
    monkeypatch.setattr(Encoder, "embed_texts", refuse)
    assert load_encoder(str(run_dir)).dim == 512
