"""PAIRS loading: every table format, detected separators, named columns, bad rows counted."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from embedsearch.data.pairs import load_pairs, pick_columns, split_indices
from embedsearch.errors import InputError


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "img"
    folder.mkdir()
    for i in range(4):
        Image.new("RGB", (8, 8), (60 * i, 0, 0)).save(folder / f"{i}.png")
    (folder / "broken.png").write_bytes(b"this is not a png")
    return folder


def _write_delimited(
    path: Path, sep: str, rows: list[tuple[str, str]], header=("filepath", "caption")
) -> Path:
    lines = [sep.join(header)] + [sep.join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    "sep,suffix", [(",", ".csv"), ("\t", ".tsv"), ("\t", ".csv"), (";", ".csv")]
)
def test_delimited_tables_with_any_separator(
    tmp_path: Path, images: Path, sep: str, suffix: str
) -> None:
    rows = [(f"img/{i}.png", f"caption number {i}") for i in range(4)]
    pairs = load_pairs(_write_delimited(tmp_path / f"pairs{suffix}", sep, rows))
    assert pairs.captions == [f"caption number {i}" for i in range(4)]
    assert pairs.images == [str(images / f"{i}.png") for i in range(4)]  # relative to the table
    assert pairs.report.summary() == "4 of 4 pairs used"


def test_jsonl_and_parquet_with_default_column_names(tmp_path: Path, images: Path) -> None:
    records = [{"image": str(images / f"{i}.png"), "title": f"t{i}", "url": "u"} for i in range(3)]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "p.parquet")
    for name in ("p.jsonl", "p.parquet"):
        pairs = load_pairs(tmp_path / name)
        assert pairs.captions == ["t0", "t1", "t2"] and len(pairs) == 3


def test_bad_rows_are_counted_by_reason_not_raised(tmp_path: Path, images: Path) -> None:
    rows = [
        ("img/0.png", "fine"),
        ("img/1.png", ""),  # empty caption
        ("img/missing.png", "gone"),  # missing image
        ("img/broken.png", "corrupt"),  # unreadable image
        ("", "no path"),  # empty image path
        ("img/3.png", "also fine"),
    ]
    pairs = load_pairs(_write_delimited(tmp_path / "p.csv", ",", rows))
    assert pairs.captions == ["fine", "also fine"]
    report = pairs.report
    assert (report.rows, report.kept) == (6, 2)
    assert dict(report.skipped) == {
        "empty caption": 1,
        "missing image": 1,
        "broken image": 1,
        "empty image path": 1,
    }
    assert "1 missing image" in report.summary()
    assert any("row 3" in example and "missing.png" in example for example in report.examples)


def test_missing_columns_name_what_is_present(tmp_path: Path, images: Path) -> None:
    table = _write_delimited(
        tmp_path / "p.csv", ",", [("img/0.png", "x")], header=("file", "caption")
    )
    with pytest.raises(InputError, match=r"filepath\|image\|path.*columns present: file, caption"):
        load_pairs(table)
    with pytest.raises(
        InputError, match=r"no column 'descr' \(--text-col\); columns present: file, caption"
    ):
        load_pairs(table, image_col="file", text_col="descr")
    assert load_pairs(table, image_col="file").captions == ["x"]


def test_pick_columns_prefers_the_first_default() -> None:
    assert pick_columns(["path", "text", "filepath", "caption"], None, None, "t") == (
        "filepath",
        "caption",
    )


def test_folder_with_same_name_captions(tmp_path: Path, images: Path) -> None:
    (images / "0.txt").write_text("a dark square\n")
    (images / "1.txt").write_text("   \n")  # empty caption
    (images / "2.txt").write_text("another square")
    (images / "broken.txt").write_text("never decodes")
    pairs = load_pairs(images)  # 3.png has no caption file
    assert pairs.captions == ["a dark square", "another square"]
    assert dict(pairs.report.skipped) == {
        "empty caption": 1,
        "no caption file": 1,
        "broken image": 1,
    }


def test_nothing_usable_is_one_clear_error(tmp_path: Path, images: Path) -> None:
    table = _write_delimited(tmp_path / "p.csv", ",", [("img/missing.png", "x"), ("img/0.png", "")])
    with pytest.raises(
        InputError, match="no usable image-caption pairs.*1 empty caption, 1 missing image"
    ):
        load_pairs(table)
    with pytest.raises(InputError, match="does not exist"):
        load_pairs(tmp_path / "nope.csv")


def test_split_is_deterministic_disjoint_and_order_independent() -> None:
    keys = [f"image{i}.png" for i in range(200)]
    train, val = split_indices(200, 0.25, 0, keys)
    assert len(val) == 50 and set(train).isdisjoint(val) and len(train) + len(val) == 200
    assert split_indices(200, 0.25, 0, keys) == (train, val)
    reversed_keys = keys[::-1]
    _, val_reversed = split_indices(200, 0.25, 0, reversed_keys)
    assert {reversed_keys[i] for i in val_reversed} == {keys[i] for i in val}
    assert split_indices(200, 0.25, 1, keys)[1] != val
    assert split_indices(3, 0.01, 0, keys[:3])[1] != []  # at least one held out
    with pytest.raises(InputError, match="--val-fraction"):
        split_indices(10, 1.0, 0, keys[:10])
