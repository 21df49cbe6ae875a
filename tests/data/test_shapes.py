"""The seeded shapes corpus: reproducible, captions that say what the pixels show, safe output."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from embedsearch.data.shapes import (
    COLORS,
    POSITIONS,
    SHAPES,
    describe_item,
    make_shapes_corpus,
    render_item,
)
from embedsearch.errors import InputError


def _rows(corpus_dir: Path) -> list[dict[str, str]]:
    with open(corpus_dir / "pairs.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_same_seed_same_corpus_other_seed_differs(tmp_path: Path) -> None:
    a = make_shapes_corpus(tmp_path / "a", n=12, seed=3)
    b = make_shapes_corpus(tmp_path / "b", n=12, seed=3)
    c = make_shapes_corpus(tmp_path / "c", n=12, seed=4)
    assert a.pairs.read_text() == b.pairs.read_text() != c.pairs.read_text()
    for name in ("00000.png", "00011.png"):
        assert np.array_equal(
            np.asarray(Image.open(a.images / name)), np.asarray(Image.open(b.images / name))
        )


def test_layout_table_and_sidecar_captions_agree(tmp_path: Path) -> None:
    corpus = make_shapes_corpus(tmp_path / "shapes", n=20, seed=0, image_size=48)
    rows = _rows(corpus.root)
    assert len(rows) == 20 and len(list(corpus.images.glob("*.png"))) == 20
    for row in rows:
        image = corpus.root / row["filepath"]
        assert Image.open(image).size == (48, 48)
        assert image.with_suffix(".txt").read_text().strip() == row["caption"]
        caption = row["caption"].lower()
        assert row["color"] in caption and row["shape"] in caption
    # Paraphrases: several templates are in use, not one.
    assert len({row["caption"].split()[0] for row in rows}) >= 3
    assert len({row["shape"] for row in rows}) >= 3 and len({row["color"] for row in rows}) >= 3


def _shape_mask(image: np.ndarray) -> np.ndarray:
    """Saturated pixels: shapes are vivid, backgrounds are near-grey."""
    rgb = image.astype(np.float32)
    return (rgb.max(axis=2) - rgb.min(axis=2)) > 90


def test_pixels_show_the_captioned_colour_position_and_size() -> None:
    areas: dict[str, list[int]] = {"small": [], "large": []}
    for index in range(60):
        item = describe_item(7, index)
        pixels = np.asarray(render_item(item, 7, index, image_size=64))
        mask = _shape_mask(pixels)
        ys, xs = np.nonzero(mask)
        # Colour: the mean shape colour is nearest to the captioned colour.
        mean = pixels[mask].mean(axis=0)
        nearest = min(COLORS, key=lambda c: np.linalg.norm(mean - np.asarray(COLORS[c])))
        assert nearest == item.color, (index, item)
        # Position: the shape's centre of mass lies near the captioned position (corners may clip).
        cx, cy = POSITIONS[item.position]
        assert abs(xs.mean() / 64 - cx) < 0.17 and abs(ys.mean() / 64 - cy) < 0.17, (index, item)
        if item.size in areas:
            areas[item.size].append(int(mask.sum()))
    assert np.mean(areas["large"]) > 2.5 * np.mean(areas["small"])


def test_every_kind_appears_and_captions_use_articles_correctly() -> None:
    items = [describe_item(0, i) for i in range(300)]
    assert {item.shape for item in items} == set(SHAPES)
    assert not any(" a orange" in f" {item.caption.lower()}" for item in items)


def test_refuses_existing_folder_and_bad_arguments(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="already exists"):
        make_shapes_corpus(tmp_path / "full", n=2)
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    with pytest.raises(InputError, match="-n"):
        make_shapes_corpus(tmp_path / "x", n=0)
    # An empty folder is fine, and no temporary folders are left behind.
    (tmp_path / "empty").mkdir()
    make_shapes_corpus(tmp_path / "empty", n=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "full"]


def test_make_corpus_command(tmp_path: Path, run_cli) -> None:
    result = run_cli("make-corpus", "shapes", "--out", tmp_path / "c", "-n", "5", "--seed", "1")
    assert result.exit_code == 0, result.stderr
    assert len(_rows(tmp_path / "c")) == 5
    assert _rows(tmp_path / "c")[0]["caption"] == describe_item(1, 0).caption
    again = run_cli("make-corpus", "shapes", "--out", tmp_path / "c", "-n", "5")
    assert again.exit_code == 2 and "already exists" in again.stderr
