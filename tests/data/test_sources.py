"""Input sources: folders, text files and tables, and their error messages."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedsearch.data.sources import RankSlice, open_source
from embedsearch.data.tables import detect_separator
from embedsearch.errors import InputError


def test_folder_lists_images_recursively_in_stable_order(tmp_path) -> None:
    for name in ["b.JPG", "a.png", "sub/c.webp", "notes.txt", "sub/d.tiff"]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    source = open_source(tmp_path)
    names = [item.source.rsplit("/", 2)[-1] for item in source]
    assert source.modality == "image" and source.count() == 4
    assert names == ["a.png", "b.JPG", "c.webp", "d.tiff"]


def test_text_file_skips_blank_lines_and_reports_undecodable_ones(tmp_path) -> None:
    path = tmp_path / "docs.txt"
    path.write_bytes(
        "first\n\nsecond\r\n\xff\xfe oops\nthird".encode("utf-8", "surrogateescape").replace(
            b"\xc3\xbf\xc3\xbe", b"\xff\xfe"
        )
    )
    items = list(open_source(path))
    assert [i.text for i in items if not i.error] == ["first", "second", "third"]
    bad = [i for i in items if i.error]
    assert len(bad) == 1 and bad[0].source.endswith(":4") and "not UTF-8" in bad[0].error


@pytest.mark.parametrize(
    "sep, suffix", [(",", ".csv"), ("\t", ".csv"), ("\t", ".tsv"), (";", ".csv")]
)
def test_separator_is_detected(tmp_path, sep: str, suffix: str) -> None:
    path = tmp_path / f"t{suffix}"
    path.write_text(f'filepath{sep}caption\na.jpg{sep}"a cat, sitting"\nb.jpg{sep}dog\n')
    assert detect_separator(path) == sep
    items = list(open_source(path, text_col="caption"))
    assert items[0].text == "a cat, sitting" and items[0].metadata == {"filepath": "a.jpg"}


def test_table_image_paths_resolve_relative_to_the_table(tmp_path) -> None:
    rows = [
        {"image": "x/a.jpg", "label": 1},
        {"image": "/abs/b.jpg", "label": 2},
        {"image": None, "label": 3},
    ]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    items = list(open_source(path, image_col="image"))
    assert items[0].path == str(tmp_path / "x/a.jpg") and items[1].path == "/abs/b.jpg"
    assert items[2].error and "empty 'image'" in items[2].error
    assert [i.metadata["label"] for i in items] == [1, 2, 3]


def test_reserved_column_names_are_carried_under_another_name(tmp_path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": [7], "text": ["hi"]}), path)
    (item,) = open_source(path, text_col="text")
    assert item.metadata == {"input_id": 7}


def test_missing_column_is_named_with_the_columns_present(tmp_path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("path\tcaption\na.jpg\thello\n")
    with pytest.raises(
        InputError, match=r"no column 'filepath' \(--image-col\); columns present: path, caption"
    ):
        open_source(path, image_col="filepath")


@pytest.mark.parametrize(
    "kwargs, message",
    [({}, "pass --text-col or --image-col"), ({"modality": "video"}, "unknown --modality")],
)
def test_table_usage_errors(tmp_path, kwargs, message) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match=message):
        open_source(path, **kwargs)


def test_modality_contradicting_the_input_is_refused(tmp_path) -> None:
    with pytest.raises(InputError, match="holds image inputs"):
        open_source(tmp_path, modality="text")


def test_rank_slices_partition_the_items(tmp_path) -> None:
    path = tmp_path / "d.txt"
    path.write_text("\n".join(f"doc {i}" for i in range(10)))
    source = open_source(path)
    slices = [[i.index for i in RankSlice(source, r, 3)] for r in range(3)]
    assert sorted(i for s in slices for i in s) == list(range(10))
    assert all(set(a).isdisjoint(b) for a in slices for b in slices if a is not b)
