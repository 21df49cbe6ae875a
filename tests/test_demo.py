"""``embedsearch demo`` end to end (reduced: fewer images and epochs), checked against its parts."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from embedsearch.demo import DEMO_QUERIES, GRID_LEGEND, MARKER, _prepare_out, run_demo
from embedsearch.errors import InputError
from embedsearch.index.hit_formats import LABEL, LEGEND, PAD
from embedsearch.train.metrics import read_metrics


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One reduced demo through the real CLI entry point."""
    from embedsearch.cli.app import main

    out = tmp_path_factory.mktemp("demo") / "out"
    import contextlib
    import io

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), pytest.raises(SystemExit) as exit_info:
        main(["demo", "--out", str(out), "-n", "160", "--epochs", "2"])
    assert exit_info.value.code in (0, None)
    return out, stdout.getvalue()


def test_demo_prints_queries_and_recall(demo: tuple[Path, str]) -> None:
    out, printed = demo
    for text, _ in DEMO_QUERIES:
        assert text in printed
    assert "held-out text→image recall@5" in printed
    assert "chance recall@5" in printed
    summary = json.loads((out / MARKER).read_text())
    assert summary["status"] == "done"
    assert summary["images"] == 160
    assert summary["held_out"] == 16
    assert summary["chance_at_5"] == pytest.approx(5 / 16)


def test_recall_through_the_index_equals_the_training_evaluation(demo: tuple[Path, str]) -> None:
    out, _ = demo
    summary = json.loads((out / MARKER).read_text())
    last = read_metrics(out / "model")[-1]
    # Same model, same held-out split, exact search: the pipeline must not lose anything.
    tolerance = 1 / summary["held_out"] + 1e-9
    assert summary["recall_at_1"] == pytest.approx(last["eval_text_to_image_r1"], abs=tolerance)
    assert summary["recall_at_5"] == pytest.approx(last["eval_text_to_image_r5"], abs=tolerance)


def test_hits_and_match_flags_agree_with_the_corpus_table(demo: tuple[Path, str]) -> None:
    out, _ = demo
    with open(out / "corpus" / "pairs.csv", newline="") as f:
        rows = {str((out / "corpus" / r["filepath"]).resolve()): r for r in csv.DictReader(f)}
    summary = json.loads((out / MARKER).read_text())
    assert [q["text"] for q in summary["queries"]] == [t for t, _ in DEMO_QUERIES]
    for query, (_, wanted) in zip(summary["queries"], DEMO_QUERIES, strict=False):
        assert len(query["hits"]) == 5
        scores = [hit["score"] for hit in query["hits"]]
        assert scores == sorted(scores, reverse=True)
        for hit in query["hits"]:
            row = rows[str(Path(hit["source"]).resolve())]
            assert hit["caption"] == row["caption"]
            assert hit["match"] == all(row[a] == v for a, v in wanted.items())


def test_grid_has_one_row_per_query_and_frames_the_matches(demo: tuple[Path, str]) -> None:
    out, _ = demo
    summary = json.loads((out / MARKER).read_text())
    cell_w, cell_h = 96 + PAD, 96 + LABEL + PAD  # the query grid's cells at 96 px
    with Image.open(out / "grid.png") as grid:
        legend = PAD + LEGEND * len(GRID_LEGEND)
        assert grid.height == PAD + len(DEMO_QUERIES) * cell_h + legend
        assert grid.width == PAD + (1 + 5) * cell_w  # the query, then its five hits
        rgb = grid.convert("RGB")
        for row, query in enumerate(summary["queries"]):
            for col, hit in enumerate(query["hits"], start=1):
                frame = rgb.getpixel((PAD + col * cell_w - 1, PAD + row * cell_h + 96 // 2))
                assert frame == ((0, 128, 0) if hit["match"] else (255, 0, 0))


def test_out_folder_rules(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(InputError, match="not empty and holds no earlier demo"):
        run_demo(tmp_path / "mine", n=10, epochs=1)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    # An earlier demo's parts are cleared, anything else in it is kept.
    old = tmp_path / "old"
    (old / "model").mkdir(parents=True)
    (old / MARKER).write_text("{}")
    (old / "grid.png").write_bytes(b"x")
    (old / "extra.txt").write_text("user file")
    _prepare_out(old)
    assert sorted(p.name for p in old.iterdir()) == ["extra.txt"]
