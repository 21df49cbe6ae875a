"""A table with one byte that is not UTF-8: only its row fails, the others are read as text."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from embedsearch.data.sources import TableSource
from embedsearch.data.tables import read_table_batches
from embedsearch.store.embedding_dir import EmbeddingDir

BAD_CSV = b"caption,n\nok caption 0,0\nbad \xff\xfe caption,1\nok caption 2,2\n"
BAD_TSV = BAD_CSV.replace(b",", b"\t")
BAD_JSONL = (
    b'{"caption": "ok caption 0"}\n{"caption": "bad \xff\xfe caption"}\n'
    b'{"caption": "ok caption 2"}\n'
)


@pytest.fixture(params=[("t.csv", BAD_CSV), ("t.tsv", BAD_TSV), ("t.jsonl", BAD_JSONL)])
def bad_table(request, tmp_path):
    name, data = request.param
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_good_rows_are_read_as_text(bad_table) -> None:
    (block,) = read_table_batches(bad_table)
    assert block.batch.column("caption").to_pylist() == ["ok caption 0", None, "ok caption 2"]


def test_only_the_bad_row_is_reported(bad_table) -> None:
    (block,) = read_table_batches(bad_table)
    assert block.errors == {1: "'caption' is not UTF-8 text (invalid start byte at byte 4)"}


def test_text_source_turns_the_bad_row_into_an_error_item(bad_table) -> None:
    items = list(TableSource(bad_table, text_col="caption", image_col=None))
    assert [(i.text, i.error is not None) for i in items] == [
        ("ok caption 0", False),
        (None, True),
        ("ok caption 2", False),
    ]


def test_image_col_rows_keep_their_paths(tmp_path) -> None:
    table = tmp_path / "t.csv"
    table.write_bytes(b"path,note\na.jpg,fine\nb.jpg,bad \xff note\n")
    items = list(TableSource(table, text_col=None, image_col="path"))
    assert items[0].path == str(tmp_path / "a.jpg")


def test_embed_stores_real_text_and_lists_the_bad_row(tmp_path, run_cli) -> None:
    table = tmp_path / "t.csv"
    table.write_bytes(BAD_CSV)
    out = tmp_path / "emb"
    result = run_cli(
        "embed",
        table,
        "--text-col",
        "caption",
        "--model",
        "tiny-clip",
        "--out",
        out,
        "--workers",
        "0",
    )
    assert result.exit_code == 0, result.stderr
    stored = [
        source
        for shard in sorted(out.glob("part-*.parquet"))
        for source in pq.read_table(shard, columns=["source"]).column("source").to_pylist()
    ]
    assert sorted(stored) == ["ok caption 0", "ok caption 2"]
    errors = EmbeddingDir.open(out).read_errors().to_pylist()
    assert errors == [
        {
            "source": f"{table.resolve()}:row 2",
            "reason": "row 2: 'caption' is not UTF-8 text (invalid start byte at byte 4)",
        }
    ]


def test_clip_pairs_skip_the_bad_row(tmp_path, make_images) -> None:
    from embedsearch.data.pairs import load_pairs

    make_images(tmp_path, 3)
    table = tmp_path / "pairs.csv"
    table.write_bytes(
        b"filepath,caption\nimg_0000.jpg,a cat\nimg_0001.jpg,bad \xff cat\nimg_0002.jpg,a dog\n"
    )
    pairs = load_pairs(table)
    assert (pairs.captions, dict(pairs.report.skipped)) == (
        ["a cat", "a dog"],
        {"not UTF-8 text": 1},
    )
