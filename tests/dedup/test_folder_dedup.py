"""``dedup FOLDER``: pretrain (copy-detection preset), embed flip-averaged, dedup with pHash."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from embedsearch.data.copies import make_copy_set
from embedsearch.errors import InputError
from embedsearch.folder_dedup import FolderDedupResult, dedup_image_folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 photo crops, a mild copy of each, and a byte-identical copy of the first."""
    folder = tmp_path_factory.mktemp("folder") / "photos"
    folder.mkdir()
    copy_set = make_copy_set(0, 8, strength="mild", size=48, seed=0)
    for i, image in enumerate(copy_set.corpus):
        image.save(folder / f"o_{i}.png")
    for i, image in enumerate(copy_set.copies):
        image.save(folder / f"c_{i}.jpg", quality="keep")
    shutil.copy(folder / "o_0.png", folder / "z_same_bytes.png")
    return folder


@pytest.fixture(scope="module")
def first_run(photos: Path) -> tuple[FolderDedupResult, list[str]]:
    lines: list[str] = []
    result = dedup_image_folder(
        photos, out=photos.parent / "out", epochs=1, threads=1, notify=lines.append
    )
    return result, lines


def test_byte_identical_copy_is_listed_for_removal(first_run) -> None:
    removed = (first_run[0].dedup.out / "remove.txt").read_text().splitlines()
    assert any(Path(line).name in {"o_0.png", "z_same_bytes.png"} for line in removed)


def test_time_is_said_before_pretraining(first_run) -> None:
    first = first_run[1][0]
    assert first.startswith("pretrain: SimCLR, copy-detection preset") and "min" in first


def test_model_is_pretrained_with_the_copy_detection_preset(first_run) -> None:
    config = json.loads((Path(first_run[0].model) / "config.json").read_text())
    assert config["training"]["preset"] == "copy-detection"


def test_embeddings_are_flip_averaged(first_run) -> None:
    assert any("flip-averaged" in line for line in first_run[1])


def test_a_second_run_reuses_the_finished_model(photos: Path, first_run) -> None:
    again = dedup_image_folder(
        photos, out=photos.parent / "out2", work=photos.parent / "out.work", epochs=1, threads=1
    )
    assert again.trained is False


def test_a_work_dir_holding_something_else_is_refused(photos: Path, tmp_path: Path) -> None:
    (tmp_path / "work" / "model").mkdir(parents=True)
    (tmp_path / "work" / "model" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a model this command trained"):
        dedup_image_folder(photos, out=tmp_path / "out", work=tmp_path / "work")


def test_cli_dedups_an_image_folder_with_a_given_model(
    run_cli, photos, first_run, tmp_path
) -> None:
    result = run_cli("dedup", photos, "-o", tmp_path / "out", "--model", first_run[0].model)
    assert result.exit_code == 0 and (tmp_path / "out" / "keep.txt").is_file()


def test_cli_passes_local_scaling_on_for_an_image_folder(
    run_cli, photos, first_run, tmp_path
) -> None:
    out = tmp_path / "out"
    run_cli("dedup", photos, "-o", out, "--model", first_run[0].model, "--no-local-scaling")
    assert json.loads((out / "dedup.json").read_text())["local_scaling"] == "off"


def test_cli_passes_whitening_on_for_an_image_folder(run_cli, photos, first_run, tmp_path) -> None:
    out = tmp_path / "out"
    run_cli("dedup", photos, "-o", out, "--model", first_run[0].model, "--no-whiten")
    assert json.loads((out / "dedup.json").read_text())["whitening"] == (
        "raw cosine: whitening turned off"
    )


def test_cli_refuses_folder_options_for_an_embedding_dir(run_cli, gen, tmp_path) -> None:
    emb = gen.write_dir(tmp_path / "emb", gen.random_unit(6, 8, seed=0))
    result = run_cli("dedup", emb, "-o", tmp_path / "out", "--pretrain-on", tmp_path)
    assert result.exit_code == 2 and "only for an image folder" in result.stderr
