"""A CLIP run dir loads in open_clip alone and gives embedsearch's vectors (issue 12.2)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from embedsearch.embedding import embed
from embedsearch.encoders import load_encoder
from embedsearch.encoders.rundir import (
    OPEN_CLIP_CONFIG_FILE,
    OPEN_CLIP_WEIGHTS_FILE,
    WEIGHTS_FILE,
    save_run_dir,
    write_open_clip_files,
)


def trained_tiny_clip_run(tmp_path: Path) -> Path:
    enc = load_encoder("tiny-clip")
    with torch.no_grad():
        for p in enc.model.parameters():
            p.add_(torch.randn_like(p) * 0.01)  # "trained": not the seeded init open_clip makes
    return save_run_dir(tmp_path / "run", enc.config, enc.model.state_dict())


def photos(folder: Path) -> Path:
    from skimage import data as skdata

    folder.mkdir()
    for name in ("chelsea", "coffee", "astronaut"):
        Image.fromarray(getattr(skdata, name)()).convert("RGB").save(folder / f"{name}.jpg")
    return folder


def test_open_clip_alone_loads_run_dir_and_gives_embed_vectors(tmp_path) -> None:
    import open_clip

    run = trained_tiny_clip_run(tmp_path)
    folder = photos(tmp_path / "photos")
    embed(folder, model=str(run), out=tmp_path / "emb", device="cpu")
    table = pd.concat(pd.read_parquet(p) for p in sorted((tmp_path / "emb").rglob("part-*")))
    ours = {
        Path(s).name: np.asarray(v)
        for s, v in zip(table["source"], table["embedding"], strict=True)
    }
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{run}")
    model.eval()
    for name, vector in ours.items():
        pixels = preprocess(Image.open(folder / name)).unsqueeze(0)
        with torch.no_grad():
            theirs = torch.nn.functional.normalize(model.encode_image(pixels), dim=-1)[0]
        assert float(np.dot(theirs.numpy(), vector)) >= 0.9999, name


def test_open_clip_weights_are_a_second_name_not_a_second_copy(tmp_path) -> None:
    run = trained_tiny_clip_run(tmp_path)
    assert (run / OPEN_CLIP_WEIGHTS_FILE).samefile(run / WEIGHTS_FILE)


def test_open_clip_config_carries_the_preprocess_cfg(tmp_path) -> None:
    run = trained_tiny_clip_run(tmp_path)
    written = json.loads((run / OPEN_CLIP_CONFIG_FILE).read_text())
    assert written["preprocess_cfg"]["resize_mode"] == "shortest"


def test_run_dir_written_before_gets_the_files_by_hand(tmp_path) -> None:
    run = trained_tiny_clip_run(tmp_path)
    (run / OPEN_CLIP_CONFIG_FILE).unlink()
    (run / OPEN_CLIP_WEIGHTS_FILE).unlink()
    assert write_open_clip_files(run) == run / OPEN_CLIP_CONFIG_FILE


def test_simclr_run_dir_gets_no_open_clip_files(tmp_path) -> None:
    enc = load_encoder("simclr:resnet18", image_size=32)
    run = save_run_dir(tmp_path / "run", enc.config, enc.model.state_dict())
    assert not (run / OPEN_CLIP_CONFIG_FILE).exists()


def test_run_dir_keeps_the_preprocess_cfg_it_was_saved_with(tmp_path) -> None:
    enc = load_encoder("tiny-clip")
    squash = {**(enc.config.preprocess_cfg or {}), "resize_mode": "squash"}
    config = dataclasses.replace(enc.config, preprocess_cfg=squash)
    run = save_run_dir(tmp_path / "run", config, enc.model.state_dict())
    assert load_encoder(str(run)).preprocess.resize_mode == "squash"
