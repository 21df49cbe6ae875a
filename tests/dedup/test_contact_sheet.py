"""``contact.png``: the largest groups and the pairs nearest the threshold, kept image first;
bounded in rows; skipped with a note for text corpora."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from embedsearch.dedup import contact_sheet as sheet_module
from embedsearch.dedup import find_duplicates
from embedsearch.index.hit_formats import LABEL, PAD

THRESHOLD = 0.9


def colour(row: int) -> tuple[int, int, int]:
    return (row * 37 % 256, row * 91 % 256, row * 53 % 256)


def images(folder: Path, n: int) -> list[str]:
    """One solid-colour PNG a row: a tile's centre pixel says which row it shows."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for row in range(n):
        path = folder / f"{row:04d}.png"
        Image.new("RGB", (40, 30), colour(row)).save(path)
        paths.append(str(path))
    return paths


def corpus(gen, root: Path, modality: str = "image") -> Path:
    """40 rows: 0 + four copies (a group of 5), 10 + two copies, and 20 ~ 21 just above the
    threshold; every other row distinct."""
    vectors = gen.random_unit(40, 48, 0)
    for row, cos in ((1, 0.99), (2, 0.98), (3, 0.985), (4, 0.975)):
        vectors[row] = gen.near_copy(vectors[0], cos, row)
    for row, cos in ((11, 0.99), (12, 0.98)):
        vectors[row] = gen.near_copy(vectors[10], cos, row)
    vectors[21] = gen.near_copy(vectors[20], 0.905, 21)
    sources = images(root / "photos", 40) if modality == "image" else [f"t{i}" for i in range(40)]
    return gen.write_dir(root / "emb", vectors, sources=sources, modality=modality)


def tile_colour(path: Path, row: int, col: int) -> tuple[int, int, int]:
    thumb = sheet_module.THUMB
    x = PAD + col * (thumb + PAD) + thumb // 2
    y = PAD + LABEL + row * (thumb + LABEL + PAD) + thumb // 2
    with Image.open(path) as picture:
        return picture.convert("RGB").getpixel((x, y))


@pytest.fixture
def result(tmp_path, gen):
    emb = corpus(gen, tmp_path)
    return find_duplicates(emb, out=tmp_path / "dups", threshold=THRESHOLD)


def test_dedup_writes_a_contact_sheet(result) -> None:
    assert (result.out / "contact.png").is_file()


def test_summary_names_the_sheet(result) -> None:
    assert json.loads((result.out / "dedup.json").read_text())["contact_sheet"] == "contact.png"


def test_first_row_is_the_largest_group_led_by_its_kept_image(result) -> None:
    assert tile_colour(result.out / "contact.png", 0, 0) == colour(0)


def test_removed_copies_follow_the_kept_image(result) -> None:
    shown = {tile_colour(result.out / "contact.png", 0, col) for col in range(1, 5)}
    assert shown == {colour(row) for row in (1, 2, 3, 4)}


def test_the_pair_nearest_the_threshold_comes_after_the_groups(result) -> None:
    groups = result.groups  # one row each, then the near pairs, weakest first
    near = (tile_colour(result.out / "contact.png", groups, 0),
            tile_colour(result.out / "contact.png", groups, 1))  # fmt: skip
    assert near == (colour(20), colour(21))


def test_the_sheet_has_a_bounded_number_of_rows(tmp_path, gen, monkeypatch) -> None:
    monkeypatch.setattr(sheet_module, "GROUPS", 1)
    monkeypatch.setattr(sheet_module, "NEAR_PAIRS", 2)
    out = find_duplicates(corpus(gen, tmp_path), out=tmp_path / "dups", threshold=THRESHOLD).out
    with Image.open(out / "contact.png") as picture:
        height = picture.height
    assert height == LABEL + PAD + 3 * (sheet_module.THUMB + LABEL + PAD)  # title + 3 rows


def test_a_text_corpus_gets_no_sheet(tmp_path, gen) -> None:
    emb = corpus(gen, tmp_path, modality="text")
    out = find_duplicates(emb, out=tmp_path / "dups", threshold=THRESHOLD).out
    assert not (out / "contact.png").exists()


def test_a_text_corpus_says_why_there_is_no_sheet(tmp_path, gen) -> None:
    emb = corpus(gen, tmp_path, modality="text")
    out = find_duplicates(emb, out=tmp_path / "dups", threshold=THRESHOLD).out
    summary = json.loads((out / "dedup.json").read_text())
    assert summary["contact_sheet"].startswith("none: the sources are text")


def test_no_pairs_no_sheet(tmp_path, gen) -> None:
    emb = gen.write_dir(
        tmp_path / "emb", gen.random_unit(30, 48, 5), sources=images(tmp_path / "p", 30)
    )
    out = find_duplicates(emb, out=tmp_path / "dups", threshold=0.99).out
    assert not (out / "contact.png").exists()
