"""`embedsearch index` and `embedsearch query`: JSON schema, errors, cross-modal text, grid,
batches."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from embedsearch.index import Searcher


@pytest.fixture(scope="module")
def clip_index(tmp_path_factory):
    """Images embedded with the tiny open_clip model (text tower included) and a flat index."""
    from embedsearch.embedding import embed
    from embedsearch.index import build_index

    root = tmp_path_factory.mktemp("clip")
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "images").mkdir()
    for i in range(24):
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        Image.new("RGB", (40, 40), colour).save(root / "images" / f"img_{i:02d}.png")
    embed(root / "images", model="tiny-clip", out=root / "emb", workers=0, batch_size=8)
    build_index([root / "emb"], root / "idx", kind="flat")
    return root


def test_text_query_searches_images_with_the_index_model(clip_index, run_cli) -> None:
    result = run_cli(
        "query", clip_index / "idx", "--text", "a red square", "-k", "5", "--format", "json"
    )
    assert result.exit_code == 0, result.stderr
    (answer,) = json.loads(result.stdout)  # only JSON on stdout
    assert answer["type"] == "text"
    assert answer["query"] == "a red square"
    hits = answer["hits"]
    assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5]
    assert all({"rank", "id", "score", "source", "dir"} <= set(h) for h in hits)
    assert all(h["source"].endswith(".png") for h in hits)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    # the same as embedding the text with the model named in index.json and scoring every image
    searcher = Searcher.open(clip_index / "idx")
    text = searcher.encoder.embed_texts(["a red square"])[0]
    from embedsearch.store.reader import iter_vectors

    ids, vectors = next(iter_vectors(clip_index / "emb"))
    expected = ids[np.argsort(-(vectors @ text))[:5]]
    assert [h["id"] for h in hits] == expected.tolist()


def test_image_query_finds_itself_and_grid_is_drawn(clip_index, run_cli) -> None:
    from PIL import Image

    grid = clip_index / "grid.png"
    image = clip_index / "images" / "img_07.png"
    result = run_cli(
        "query",
        clip_index / "idx",
        "--image",
        image,
        "-k",
        "3",
        "--grid",
        grid,
        "--format",
        "jsonl",
    )
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 3
    assert rows[0]["source"].endswith("img_07.png")
    assert rows[0]["score"] == pytest.approx(1.0, abs=1e-4)
    sheet = Image.open(grid)
    assert sheet.format == "PNG"
    assert sheet.width > 4 * 128
    assert sheet.height > 128
    # the first hit's cell shows the image's colour, not a blank tile
    colour = Image.open(image).getpixel((20, 20))
    cell = sheet.getpixel((6 + 134 + 64, 6 + 64))
    assert np.abs(np.subtract(cell, colour)).max() <= 3


def test_queries_file_mixes_texts_and_images_and_csv_output(clip_index, run_cli) -> None:
    queries = clip_index / "queries.txt"
    queries.write_text(f"a blue thing\n{clip_index / 'images' / 'img_03.png'}\nsomething green\n")
    result = run_cli(
        "query", clip_index / "idx", "--queries", queries, "-k", "2", "--format", "csv"
    )
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["query_index"], r["query_type"]) for r in rows] == [
        ("0", "text"),
        ("0", "text"),
        ("1", "image"),
        ("1", "image"),
        ("2", "text"),
        ("2", "text"),
    ]
    assert rows[2]["source"].endswith("img_03.png")


def test_text_on_an_image_only_model_is_a_one_line_error(tmp_path, run_cli, make_images) -> None:
    make_images(tmp_path / "imgs", 6)
    assert (
        run_cli(
            "embed",
            tmp_path / "imgs",
            "--out",
            tmp_path / "emb",
            "--model",
            "simclr:resnet18",
            "--image-size",
            "32",
            "--workers",
            "0",
        ).exit_code
        == 0
    )
    built = run_cli("index", tmp_path / "emb", "--out", tmp_path / "idx", "--format", "json")
    assert built.exit_code == 0
    assert json.loads(built.stdout)["ntotal"] == 6
    result = run_cli("query", tmp_path / "idx", "--text", "a cat")
    assert result.exit_code == 2
    # the untrained model's warning line (issue 17), then the one error line
    lines = [line for line in result.stderr.strip().splitlines() if "is untrained" not in line]
    assert lines[0].startswith("error:")
    assert "no text tower" in result.stderr
    assert len(lines) == 1
    assert "Traceback" not in result.stderr
    by_id = run_cli("query", tmp_path / "idx", "--id", "2", "-k", "1", "--format", "json")
    assert json.loads(by_id.stdout)[0]["hits"][0]["id"] == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["query", "{idx}"], "exactly one of"),
        (["query", "{idx}", "--text", "x", "--id", "1"], "exactly one of"),
        (["query", "{emb}", "--id", "1"], "not an index dir"),
        (["index", "{emb}", "--out", "{idx}"], "already an index"),
        (["index", "{emb}", "--out", "{new}", "--max-memory", "lots"], "not a size"),
        (["query", "{idx}", "--vector", "{npy}"], "dim 3"),
    ],
)
def test_usage_errors_exit_2_with_one_line(clip_index, tmp_path, run_cli, args, message) -> None:
    np.save(tmp_path / "v.npy", np.ones(3, np.float32))
    names = {
        "idx": clip_index / "idx",
        "emb": clip_index / "emb",
        "new": tmp_path / "new",
        "npy": tmp_path / "v.npy",
    }
    result = run_cli(*[a.format(**{k: str(v) for k, v in names.items()}) for a in args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, choices",
    [
        (["query", "{idx}", "--id", "1", "--format", "xml"], ["table", "jsonl", "csv"]),
        (["index", "{emb}", "--out", "{new}", "--kind", "lsh"], ["hnsw", "ivfsq", "ivfpq"]),
        (["index", "{emb}", "--out", "{new}", "--device", "tpu"], ["cpu", "cuda"]),
    ],
)
def test_unknown_choices_exit_2_naming_the_choices(
    clip_index, tmp_path, run_cli, args, choices
) -> None:
    names = {"idx": clip_index / "idx", "emb": clip_index / "emb", "new": tmp_path / "new"}
    result = run_cli(*[a.format(**{k: str(v) for k, v in names.items()}) for a in args])
    assert result.exit_code == 2
    for choice in choices:
        assert choice in result.stderr
    assert not (tmp_path / "new").exists()


def test_vector_file_query_and_index_table_output(clip_index, tmp_path, run_cli) -> None:
    searcher = Searcher.open(clip_index / "idx")
    vectors = np.stack([searcher.vector_of(4), searcher.vector_of(9)])
    np.save(tmp_path / "q.npy", vectors)
    result = run_cli(
        "query", clip_index / "idx", "--vector", tmp_path / "q.npy", "-k", "1", "--format", "json"
    )
    assert [r["hits"][0]["id"] for r in json.loads(result.stdout)] == [4, 9]
    table = run_cli("query", clip_index / "idx", "--id", "4", "-k", "2")
    assert table.exit_code == 0
    assert "img_" in table.stdout
    assert "score" in table.stdout
