"""`query` edge cases: a huge -k, and `--queries` lines that name missing images."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def small_index(tmp_path_factory):
    """8 plain-colour images embedded with the tiny CLIP model, in a flat index."""
    from PIL import Image

    from embedsearch.embedding import embed
    from embedsearch.index import build_index

    root = tmp_path_factory.mktemp("edges")
    rng = np.random.default_rng(1)
    (root / "images").mkdir()
    for i in range(8):
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        Image.new("RGB", (32, 32), colour).save(root / "images" / f"img_{i}.png")
    embed(root / "images", model="tiny-clip", out=root / "emb", workers=0, batch_size=8)
    build_index([root / "emb"], root / "idx", kind="flat")
    return root


def test_huge_k_is_capped_at_the_index_size(small_index, run_cli) -> None:
    result = run_cli(
        "query", small_index / "idx", "--id", "0", "-k", "2000000000", "--format", "json"
    )
    assert result.exit_code == 0, result.stderr
    (answer,) = json.loads(result.stdout)
    assert len(answer["hits"]) == 8


def test_huge_k_says_it_was_capped(small_index, run_cli) -> None:
    result = run_cli(
        "query", small_index / "idx", "--id", "0", "-k", "2000000000", "--format", "json"
    )
    assert "note: -k 2,000,000,000 is more than the 8 indexed rows; using 8" in result.stderr


def test_searcher_caps_k_for_library_users(small_index) -> None:
    from embedsearch.index import Searcher

    searcher = Searcher.open(small_index / "idx")
    scores, keys = searcher.search_raw(searcher.vector_of(0), k=2_000_000_000)
    assert keys.shape == (1, 8)


@pytest.fixture
def queries_with_a_missing_image(small_index, tmp_path):
    queries = tmp_path / "queries.txt"
    queries.write_text(f"a red thing\nmissing/photo.jpg\n{small_index / 'images' / 'img_2.png'}\n")
    return queries


def test_missing_image_line_is_an_error_for_that_line(
    small_index, run_cli, queries_with_a_missing_image
) -> None:
    result = run_cli(
        "query", small_index / "idx", "--queries", queries_with_a_missing_image, "--format", "json"
    )
    answers = json.loads(result.stdout)
    assert (answers[1]["type"], answers[1]["hits"]) == ("image", [])
    assert "missing/photo.jpg" in answers[1]["error"]


def test_missing_image_line_is_reported_on_stderr(
    small_index, run_cli, queries_with_a_missing_image
) -> None:
    result = run_cli(
        "query", small_index / "idx", "--queries", queries_with_a_missing_image, "--format", "json"
    )
    assert "failed: line 2: " in result.stderr
    assert "No such file or directory" in result.stderr


def test_other_lines_are_still_answered(small_index, run_cli, queries_with_a_missing_image) -> None:
    result = run_cli(
        "query", small_index / "idx", "--queries", queries_with_a_missing_image, "--format", "json"
    )
    answers = json.loads(result.stdout)
    assert [(a["type"], len(a["hits"])) for a in answers] == [
        ("text", 8),
        ("image", 0),
        ("image", 8),
    ]
