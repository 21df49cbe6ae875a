"""pretrain simclr's presets and defaults, and the run estimate it prints and logs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embedsearch.errors import InputError
from embedsearch.train.presets import PRESETS
from embedsearch.train.simclr import pretrain_simclr, resolve_recipe

FAST = {"workers": 0, "threads": 1, "image_size": 16, "batch_size": 8}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    folder = tmp_path_factory.mktemp("presets") / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def test_default_epochs_make_about_the_presets_steps() -> None:
    _, epochs, _ = resolve_recipe("general", 2000)
    assert epochs * (2000 // 128) >= PRESETS["general"].steps


def test_default_epochs_shrink_for_a_large_folder() -> None:
    assert resolve_recipe("general", 200_000)[1] == 1


def test_general_default_uses_the_standard_stem_at_64_px() -> None:
    recipe, _, small = resolve_recipe("general", 2000)
    assert (recipe.image_size, small) == (64, False)


def test_small_stem_is_kept_at_32_px() -> None:
    assert resolve_recipe("general", 2000, image_size=32)[2] is True


def test_copy_detection_preset_trains_on_copy_augmentations() -> None:
    recipe, _, _ = resolve_recipe("copy-detection", 2000)
    assert (recipe.crop_min_scale, recipe.jpeg_prob) == (0.3, 0.5)


def test_an_option_given_overrides_the_preset() -> None:
    assert resolve_recipe("copy-detection", 2000, temperature=0.2)[0].temperature == 0.2


def test_a_small_folder_gets_a_batch_it_fills() -> None:
    assert resolve_recipe("general", 40)[0].batch_size == 32


def test_unknown_preset_is_refused() -> None:
    with pytest.raises(InputError, match="--preset"):
        resolve_recipe("fast", 2000)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def run(images: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """One 2-epoch copy-detection run (10 steps), its notify lines kept."""
    out = tmp_path_factory.mktemp("run") / "run"
    lines: list[str] = []
    pretrain_simclr(images, out=out, preset="copy-detection", epochs=2, notify=lines.append, **FAST)
    return out, lines


def test_run_dir_records_the_preset(run: tuple[Path, list[str]]) -> None:
    training = json.loads((run[0] / "config.json").read_text())["training"]
    assert training["preset"] == "copy-detection"


def test_estimate_is_said_after_the_first_steps(run: tuple[Path, list[str]]) -> None:
    assert any(line.startswith("estimate: ") and "10 steps" in line for line in run[1])


def test_train_log_gets_the_estimate_and_a_line_per_epoch(run: tuple[Path, list[str]]) -> None:
    log = (run[0] / "train.log").read_text().splitlines()
    assert [line.split(" ", 2)[2].split(":")[0] for line in log] == [
        "estimate",
        "epoch 1/2",
        "epoch 2/2",
    ]


def test_cli_prints_the_estimate_on_one_line(run_cli, images: Path, tmp_path: Path) -> None:
    args = ["--image-size", "16", "--batch-size", "8", "--epochs", "1", "--threads", "1"]
    result = run_cli("pretrain", "simclr", images, "--out", tmp_path / "run", *args)
    lines = [line for line in result.stderr.splitlines() if line.startswith("estimate: ")]
    assert len(lines) == 1 and "done around" in lines[0]
