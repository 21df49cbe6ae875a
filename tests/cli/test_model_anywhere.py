"""Issue 17 item 1: an index (and an embedding dir) made with a run dir answers text and image
queries from any working dir, after a move or a copy, and with the run dir gone.

Everything runs through the real CLI, from the working dir a user would be in: the run dir is
named as typed (``demo/model``), as ``embedsearch pretrain ... -o demo/model`` leaves it.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

TRAINED = {"epochs_done": 3, "loss_first": 3.0, "loss_last": 1.0}


def _cli(*args) -> int:
    from embedsearch.cli.app import main

    try:
        main([str(a) for a in args])
    except SystemExit as e:
        return int(e.code or 0)
    return 0


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """``repo/`` with ``demo/model``, ``demo/emb`` and ``demo/index`` built from inside it with the
    CLI, naming the run dir as typed (built once: tests change copies)."""
    from embedsearch.encoders import load_encoder
    from embedsearch.encoders.rundir import save_run_dir

    repo = tmp_path_factory.mktemp("repo")
    encoder = load_encoder("tiny-clip")
    config = replace(encoder.config, training=TRAINED)
    save_run_dir(repo / "demo" / "model", config, encoder.model.state_dict())
    _write_photos(repo / "photos", 6)
    before = os.getcwd()
    os.chdir(repo)
    try:
        assert _cli("embed", "photos", "--model", "demo/model", "-o", "demo/emb") == 0
        assert _cli("index", "demo/emb", "-o", "demo/index") == 0
    finally:
        os.chdir(before)
    return repo


def _write_photos(folder: Path, n: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        base = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(base).resize((40, 48)).save(folder / f"img_{i:04d}.jpg")


def _copy_index(project: Path, dest: Path, *, model: str | None = None, carried: bool = True):
    """A copy of the project's index at ``dest``; ``model``: what its index.json records."""
    shutil.copytree(project / "demo" / "index", dest)
    info = json.loads((dest / "index.json").read_text())
    if model is not None:
        info["model"] = model
    if not carried:
        for key in ("model_copy", "model_digest"):
            info.pop(key, None)
        shutil.rmtree(dest / "model")
    (dest / "index.json").write_text(json.dumps(info))
    return dest


def _query(run_cli, index: Path, *args: str):
    return run_cli("query", index, *args, "-k", "2", "--format", "json")


def test_text_query_works_from_another_working_dir(project, run_cli, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    result = _query(run_cli, project / "demo" / "index", "--text", "a red star")
    assert result.exit_code == 0, result.stderr


def test_image_query_works_from_another_working_dir(project, run_cli, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    image = project / "photos" / "img_0003.jpg"
    result = _query(run_cli, project / "demo" / "index", "--image", image)
    assert json.loads(result.stdout)[0]["hits"][0]["source"].endswith("img_0003.jpg")


def test_index_records_the_resolved_run_dir_path(project) -> None:
    info = json.loads((project / "demo" / "index" / "index.json").read_text())
    assert info["model"] == str((project / "demo" / "model").resolve())


def test_embedding_dir_records_the_resolved_run_dir_path(project) -> None:
    manifest = json.loads((project / "demo" / "emb" / ".embedsearch" / "manifest.json").read_text())
    assert manifest["model"] == str((project / "demo" / "model").resolve())


def test_carried_weights_are_hard_links_on_one_disk(project) -> None:
    carried = project / "demo" / "index" / "model" / "model.safetensors"
    original = project / "demo" / "model" / "model.safetensors"
    assert carried.stat().st_ino == original.stat().st_ino


def test_moved_index_answers_text_with_the_run_dir_gone(project, run_cli, monkeypatch, tmp_path):
    # the recorded run dir does not exist: as when it was deleted after the index was moved
    moved = _copy_index(project, tmp_path / "elsewhere" / "index", model=str(tmp_path / "gone"))
    monkeypatch.chdir(tmp_path)
    result = _query(run_cli, moved, "--text", "a red star")
    assert result.exit_code == 0, result.stderr


def test_moved_index_answers_images_with_the_run_dir_gone(project, run_cli, monkeypatch, tmp_path):
    moved = _copy_index(project, tmp_path / "elsewhere" / "index", model=str(tmp_path / "gone"))
    monkeypatch.chdir(tmp_path)
    result = _query(run_cli, moved, "--image", project / "photos" / "img_0001.jpg")
    assert json.loads(result.stdout)[0]["hits"][0]["source"].endswith("img_0001.jpg")


def test_index_of_a_moved_embedding_dir_carries_the_model(project, run_cli, monkeypatch, tmp_path):
    moved = tmp_path / "emb"
    shutil.copytree(project / "demo" / "emb", moved)
    manifest_file = moved / ".embedsearch" / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["model"] = str(tmp_path / "gone")  # its run dir is not there any more
    manifest_file.write_text(json.dumps(manifest))
    monkeypatch.chdir(tmp_path)
    assert run_cli("index", moved, "-o", "idx").exit_code == 0
    result = _query(run_cli, tmp_path / "idx", "--text", "a red star")
    assert result.exit_code == 0, result.stderr


def test_old_index_with_a_relative_model_path_opens_from_another_dir(
    project, run_cli, monkeypatch, tmp_path
):
    # written before this change: the path as typed from repo/, no carried model
    old = tmp_path / "repo"
    shutil.copytree(project / "demo" / "model", old / "demo" / "model")
    _copy_index(project, old / "demo" / "index", model="demo/model", carried=False)
    monkeypatch.chdir(tmp_path)
    result = _query(run_cli, old / "demo" / "index", "--text", "a red star")
    assert result.exit_code == 0, result.stderr


def test_missing_model_error_names_the_recorded_path(project, run_cli, monkeypatch, tmp_path):
    gone = str(tmp_path / "gone" / "model")
    index = _copy_index(project, tmp_path / "index", model=gone, carried=False)
    monkeypatch.chdir(tmp_path)
    result = _query(run_cli, index, "--text", "a red star")
    assert gone in result.stderr


def test_missing_model_error_says_how_to_point_at_it(project, run_cli, monkeypatch, tmp_path):
    gone = str(tmp_path / "gone" / "model")
    index = _copy_index(project, tmp_path / "index", model=gone, carried=False)
    monkeypatch.chdir(tmp_path)
    result = _query(run_cli, index, "--text", "a red star")
    assert "--model PATH" in result.stderr.strip().splitlines()[-1]


def test_model_override_finds_a_moved_run_dir(project, run_cli, monkeypatch, tmp_path):
    index = _copy_index(project, tmp_path / "index", model=str(tmp_path / "gone"), carried=False)
    monkeypatch.chdir(tmp_path)
    run_dir = project / "demo" / "model"
    result = _query(run_cli, index, "--text", "a red star", "--model", run_dir)
    assert result.exit_code == 0, result.stderr


def test_model_override_of_another_model_is_refused(project, run_cli, monkeypatch, tmp_path):
    index = _copy_index(project, tmp_path / "index", model=str(tmp_path / "gone"), carried=False)
    monkeypatch.chdir(tmp_path)
    result = _query(run_cli, index, "--text", "a red star", "--model", "simclr:resnet18")
    assert "re-embed and re-index" in result.stderr


def test_changed_carried_weights_are_refused(project, run_cli, monkeypatch, tmp_path):
    index = _copy_index(project, tmp_path / "index", model=str(tmp_path / "gone"))
    weights = index / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte in the last tensor
    weights.unlink()  # the copy may be a hard link: never change the original's bytes
    weights.write_bytes(bytes(data))
    monkeypatch.chdir(tmp_path)
    result = _query(run_cli, index, "--text", "a red star")
    assert "re-embed and re-index" in result.stderr
