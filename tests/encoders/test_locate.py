"""Finding a dir's recorded model again (embedsearch.encoders.locate): older records, copies
instead of links, and an embedding dir's model for dedup calibration after a move."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from embedsearch.encoders.locate import (
    ModelRecord,
    carry_run_dir,
    load_recorded,
    recorded_spec,
    run_dir_digest,
)

TRAINED = {"epochs_done": 3, "loss_first": 3.0, "loss_last": 1.0}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> tuple[Path, str]:
    """A SimCLR run dir (32 px) and the fingerprint of its model."""
    from embedsearch.encoders import load_encoder
    from embedsearch.encoders.rundir import save_run_dir

    encoder = load_encoder("simclr:resnet18", image_size=32)
    out = tmp_path_factory.mktemp("run") / "model"
    save_run_dir(out, replace(encoder.config, training=TRAINED), encoder.model.state_dict())
    return out, encoder.fingerprint


def test_old_relative_record_is_found_under_the_dirs_parents(run_dir, tmp_path, monkeypatch):
    source, fingerprint = run_dir
    shutil.copytree(source, tmp_path / "repo" / "demo" / "model")
    home = tmp_path / "repo" / "demo" / "emb"
    home.mkdir()
    monkeypatch.chdir(tmp_path)  # not repo/, where "demo/model" was typed
    record = ModelRecord("demo/model", {}, fingerprint, home=home)
    assert load_recorded(record).fingerprint == fingerprint


def test_weights_are_copied_where_links_are_refused(run_dir, tmp_path, monkeypatch):
    source, _ = run_dir

    def refuse(*args, **kwargs):
        raise OSError("cross-device link")

    monkeypatch.setattr(os, "link", refuse)
    assert carry_run_dir(source, tmp_path / "carried") == run_dir_digest(source)


def test_a_weights_file_in_a_spec_is_recorded_absolute(tmp_path, monkeypatch):
    (tmp_path / "w.safetensors").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    spec = recorded_spec("openclip:RN50/w.safetensors")
    assert spec == f"openclip:RN50/{tmp_path.resolve() / 'w.safetensors'}"


def test_moved_embedding_dir_still_calibrates_dedup(run_dir, tmp_path, make_images):
    from embedsearch.dedup.threshold import MIN_CALIBRATION_IMAGES, self_copies
    from embedsearch.embedding import embed
    from embedsearch.store.embedding_dir import EmbeddingDir

    source, _ = run_dir
    model = tmp_path / "model"
    shutil.copytree(source, model)
    images = make_images(tmp_path / "photos", MIN_CALIBRATION_IMAGES)
    embed(tmp_path / "photos", model=str(model), out=tmp_path / "emb", device="cpu")
    shutil.move(tmp_path / "emb", tmp_path / "moved")
    shutil.rmtree(model)
    moved = EmbeddingDir.open(tmp_path / "moved")
    assert self_copies(moved, [str(p) for p in images], recipes=("mild",)) is not None


def test_embedding_into_a_dir_of_another_model_says_reembed_and_reindex(tmp_path) -> None:
    from embedsearch.errors import MismatchError
    from embedsearch.store.embedding_dir import EmbeddingDir

    made = {"model": "a", "model_options": {}, "modality": "image", "dim": 4, "source": "x"}
    EmbeddingDir.create_or_open(tmp_path / "e", fingerprint="one", **made)
    with pytest.raises(MismatchError, match="re-embed and re-index"):
        EmbeddingDir.create_or_open(tmp_path / "e", fingerprint="two", **made)
