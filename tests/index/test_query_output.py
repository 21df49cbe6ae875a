"""What `query` prints for people and scripts: an 80-column table that never cuts a number, paths
shortened from the left, what a score means in this index (table, json, csv alike), and a grid
that names its tiles and shows an ``--id`` query's own image."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from embedsearch.index.hit_formats import LABEL, PAD, shorten_path, write_grid, write_hits
from embedsearch.index.query import QueryResult
from embedsearch.index.scores import ScoreScale
from embedsearch.index.searcher import Hit
from embedsearch.store.arrays import write_embedding_dir

LONG = "a-rather-long-folder-name-for-photos/holiday-2026-trip/originals"


@pytest.fixture(scope="module")
def photo_index(tmp_path_factory) -> Path:
    """60 real-looking image files in a deep folder, 1,200 more rows, ids up to 7 digits, and a
    flat index over them (vectors made here: no model is needed for --id queries)."""
    from embedsearch.index import build_index

    root = tmp_path_factory.mktemp("photos")
    folder = root / LONG
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    sources = []
    for i in range(60):
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        path = folder / f"photograph_number_{i:03d}_full_resolution.png"
        Image.new("RGB", (40, 30), colour).save(path)
        sources.append(str(path))
    sources += [f"{folder}/more/row_{i}.png" for i in range(1200)]
    vectors = rng.standard_normal((len(sources), 16)).astype(np.float32)
    vectors[1] = vectors[0] + 0.05 * rng.standard_normal(16).astype(np.float32)  # a near copy
    ids = np.arange(len(sources), dtype=np.int64) + 1_000_000
    write_embedding_dir(root / "emb", vectors, ids=ids, sources=sources, model="simclr:resnet18")
    build_index([root / "emb"], root / "idx", kind="flat")
    return root


def _cli(*args: str, columns: int = 80) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(columns), "PYTHONPATH": str(Path.cwd())}
    return subprocess.run(
        [sys.executable, "-m", "embedsearch", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def table_80(photo_index: Path) -> str:
    result = _cli("query", str(photo_index / "idx"), "--id", "1000000", "-k", "5")
    assert result.returncode == 0, result.stderr
    return result.stdout


def _rows(table: str) -> list[list[str]]:
    """The body rows of a rich table, cell by cell."""
    return [
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in table.splitlines()
        if line.startswith("│")
    ]


def test_an_80_column_table_fits_80_columns(table_80: str) -> None:
    assert max(len(line) for line in table_80.splitlines() if "│" in line) <= 80


def test_an_80_column_table_shows_whole_ids(table_80: str) -> None:
    assert [row[1] for row in _rows(table_80)][:2] == ["1000000", "1000001"]


def test_an_80_column_table_shows_whole_scores(table_80: str) -> None:
    assert _rows(table_80)[0][2] == "1.0000"


def test_an_80_column_table_shows_whole_ranks(table_80: str) -> None:
    assert [row[0] for row in _rows(table_80)] == ["1", "2", "3", "4", "5"]


def test_a_long_path_keeps_its_file_name_and_loses_its_leading_folders(table_80: str) -> None:
    first = _rows(table_80)[0][-1]
    assert first.startswith("…/") and first.endswith("photograph_number_000_full_resolution.png")


def test_shorten_path_cuts_at_a_folder_boundary() -> None:
    assert shorten_path("/data/photos/2026/holiday/cat.png", 20) == "…/holiday/cat.png"


def test_shorten_path_leaves_a_short_path_alone() -> None:
    assert shorten_path("photos/cat.png", 20) == "photos/cat.png"


def test_the_table_says_what_a_high_score_is_in_this_index(photo_index, table_80) -> None:
    scale = _scale(photo_index)
    assert f"scores above {scale.unrelated['p99']:.3f} are in the top 1%" in " ".join(
        table_80.split()
    )


def test_the_table_gives_each_hit_its_percentile(photo_index, table_80) -> None:
    header = next(line for line in table_80.splitlines() if "rank" in line)
    assert "pct" in header
    assert _rows(table_80)[0][3] == ">=99"  # the row itself: above every recorded percentile


def _scale(photo_index: Path) -> ScoreScale:
    from embedsearch.index.layout import read_info

    info = read_info(photo_index / "idx")
    return ScoreScale.of(info.score_percentiles, info.similarity, info.modality)


def test_json_hits_carry_the_percentile_of_their_score(photo_index, run_cli) -> None:
    result = run_cli("query", photo_index / "idx", "--id", "1000000", "-k", "5", "--format", "json")
    (answer,) = json.loads(result.stdout)
    scale = _scale(photo_index)
    assert [h["percentile"] for h in answer["hits"]] == [
        scale.percentile(h["score"]) for h in answer["hits"]
    ]


def test_json_carries_the_index_score_scale(photo_index, run_cli) -> None:
    result = run_cli("query", photo_index / "idx", "--id", "1000000", "--format", "json")
    (answer,) = json.loads(result.stdout)
    assert answer["score_scale"]["unrelated_percentiles"] == _scale(photo_index).unrelated


def test_csv_rows_carry_the_same_percentile_as_json(photo_index, run_cli) -> None:
    as_csv = run_cli("query", photo_index / "idx", "--id", "1000000", "--format", "csv")
    as_json = run_cli("query", photo_index / "idx", "--id", "1000000", "--format", "json")
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    (answer,) = json.loads(as_json.stdout)
    assert [float(r["percentile"]) for r in rows] == [h["percentile"] for h in answer["hits"]]


def test_a_score_below_every_unrelated_pair_has_a_low_percentile() -> None:
    scale = ScoreScale("cosine", {"p1": 0.1, "p10": 0.2, "p50": 0.3, "p90": 0.4, "p99": 0.5})
    assert scale.percentile(0.3) == 50.0


def test_an_index_without_recorded_percentiles_gives_no_percentile() -> None:
    assert ScoreScale.of({}, None).percentile(0.9) is None


def test_an_id_query_names_its_own_file_in_json(photo_index, run_cli) -> None:
    result = run_cli("query", photo_index / "idx", "--id", "1000003", "--format", "json")
    (answer,) = json.loads(result.stdout)
    assert answer["source"].endswith("photograph_number_003_full_resolution.png")


def test_the_grid_of_an_id_query_shows_its_own_image(photo_index, run_cli) -> None:
    grid = photo_index / "id-grid.png"
    result = run_cli("query", photo_index / "idx", "--id", "1000003", "-k", "2", "--grid", grid)
    assert result.exit_code == 0, result.stderr
    colour = Image.open(photo_index / LONG / "photograph_number_003_full_resolution.png")
    expected = colour.getpixel((5, 5))
    tile = Image.open(grid).convert("RGB").getpixel((PAD + 64, PAD + 64))  # the query's tile
    assert np.abs(np.subtract(tile, expected)).max() <= 3


def _text_rows(sheet: Image.Image, x0: int, x1: int, y0: int, y1: int) -> int:
    """Dark pixels (text) in a box of ``sheet``."""
    box = np.asarray(sheet.convert("L").crop((x0, y0, x1, y1)))
    return int((box < 100).sum())


def test_the_grid_names_each_tile_under_it(tmp_path) -> None:
    hits = [Hit(1, 7, 0.9, str(tmp_path / "cat.png"))]
    named = write_grid([QueryResult("text", "a cat", hits)], tmp_path / "a.png", thumb=96)
    with Image.open(named) as sheet:
        # the second line under the hit's tile holds its file name (black text)
        x0, y0 = PAD + 96 + PAD, PAD + 96 + 14
        assert _text_rows(sheet, x0, x0 + 96, y0, PAD + 96 + LABEL) > 0


def test_the_grid_legend_draws_each_colour_with_its_meaning(tmp_path) -> None:
    hits = [Hit(1, 7, 0.9, "x.png")]
    legend = (("green", "green: a match"), ("red", "red: not a match"))
    path = write_grid([QueryResult("text", "q", hits)], tmp_path / "g.png", thumb=96, legend=legend)
    with Image.open(path) as sheet:
        rgb = sheet.convert("RGB")
        top = PAD + 96 + LABEL + PAD
        swatches = [rgb.getpixel((PAD, top + n * 18 + 8)) for n in range(2)]
    assert swatches == [(0, 128, 0), (255, 0, 0)]


def test_query_on_an_embedding_dir_suggests_building_an_index(photo_index, run_cli) -> None:
    result = run_cli("query", photo_index / "emb", "--id", "1000000")
    assert result.exit_code == 2
    assert f"embedsearch index {photo_index / 'emb'} --out INDEX_DIR" in result.stderr


def test_a_query_without_hits_renders_an_empty_table() -> None:
    from rich.console import Console

    from embedsearch.index.hit_formats import hits_table

    console = Console(width=80, record=True, file=io.StringIO())
    console.print(hits_table(QueryResult("text", "nothing here", []), width=80))
    assert "text: nothing here" in console.export_text()


SCALE = ScoreScale("cosine", {"p1": 0.1, "p10": 0.2, "p50": 0.3, "p90": 0.4, "p99": 0.5})


def test_a_text_query_of_an_image_index_gets_no_percentile() -> None:
    # a caption and its image score on another scale than two images: no pct that misleads
    buffer = io.StringIO()
    write_hits([QueryResult("text", "a cat", [Hit(1, 7, 0.3, "cat.png")])], "jsonl", buffer, SCALE)
    assert "percentile" not in json.loads(buffer.getvalue())


def test_an_image_query_of_an_image_index_gets_its_percentile() -> None:
    buffer = io.StringIO()
    write_hits([QueryResult("image", "q.png", [Hit(1, 7, 0.3, "cat.png")])], "jsonl", buffer, SCALE)
    assert json.loads(buffer.getvalue())["percentile"] == 50.0


def test_a_long_source_gives_up_room_for_a_short_metadata_column() -> None:
    from rich.console import Console

    from embedsearch.index.hit_formats import hits_table

    source = "/data/" + "deep-folder/" * 6 + "cat.png"
    hits = [Hit(1, 7, 0.9, source, {"label": "cat"})]
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(hits_table(QueryResult("image", "q.png", hits), width=80))
    header = next(line for line in console.export_text().splitlines() if "rank" in line)
    assert "label" in header
