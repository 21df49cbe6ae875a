"""``embed`` as a library: formats, bad inputs, reruns, changed files, mismatches."""

from __future__ import annotations

import glob
import io
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from embedsearch.embedding import embed
from embedsearch.errors import InputError, MismatchError
from embedsearch.store import EmbeddingDir

MODEL = "simclr:resnet18"
SIZE = 32


def _run(source, out, **kwargs):
    return embed(
        source,
        model=kwargs.pop("model", MODEL),
        out=out,
        image_size=kwargs.pop("image_size", SIZE),
        workers=kwargs.pop("workers", 0),
        batch_size=kwargs.pop("batch_size", 8),
        **kwargs,
    )


def _table(out) -> pa.Table:
    return pa.concat_tables(pq.read_table(p) for p in sorted(glob.glob(f"{out}/part-*.parquet")))


def _bad_and_odd_images(folder) -> dict[str, str]:
    """Write a zoo of inputs; returns {file name: 'ok' | expected reason fragment}."""
    folder.mkdir(parents=True, exist_ok=True)
    jpeg = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(jpeg, "JPEG")
    cases = {
        "cmyk.jpg": ("ok", lambda p: Image.new("CMYK", (30, 30), (0, 200, 200, 0)).save(p)),
        "gray16.png": (
            "ok",
            lambda p: Image.fromarray(np.arange(900, dtype=np.uint16).reshape(30, 30) * 50).save(p),
        ),
        "palette.gif": ("ok", lambda p: Image.new("P", (30, 30), 5).save(p)),
        "alpha.png": ("ok", lambda p: Image.new("RGBA", (30, 30), (0, 0, 255, 100)).save(p)),
        "gray.bmp": ("ok", lambda p: Image.new("L", (30, 30), 77).save(p)),
        "fotografía_日本.webp": ("ok", lambda p: Image.new("RGB", (30, 30), (1, 99, 1)).save(p)),
        "scan.tif": ("ok", lambda p: Image.new("RGB", (30, 30), (9, 9, 99)).save(p)),
        "truncated.jpg": ("truncated", lambda p: p.write_bytes(jpeg.getvalue()[:300])),
        "empty.png": ("empty file", lambda p: p.write_bytes(b"")),
        "text.jpg": ("not an image", lambda p: p.write_text("hello")),
    }
    for name, (_, make) in cases.items():
        make(folder / name)
    (folder / "notes.md").write_text("ignored: not an image extension")
    return {name: expected for name, (expected, _) in cases.items()}


def test_folder_with_bad_and_odd_images(tmp_path) -> None:
    expected = _bad_and_odd_images(tmp_path / "in")
    summary = _run(tmp_path / "in", tmp_path / "emb")
    ok = {n for n, e in expected.items() if e == "ok"}
    assert summary.embedded == len(ok)
    assert summary.failed == len(expected) - len(ok)
    table = _table(tmp_path / "emb")
    assert {s.rsplit("/", 1)[-1] for s in table.column("source").to_pylist()} == ok
    errors = pq.read_table(tmp_path / "emb" / ".embedsearch" / "errors.parquet").to_pylist()
    reasons = {e["source"].rsplit("/", 1)[-1]: e["reason"] for e in errors}
    for name, fragment in expected.items():
        if fragment != "ok":
            assert fragment in reasons[name]


def test_shard_schema_is_the_documented_contract(tmp_path, image_folder) -> None:
    _run(image_folder, tmp_path / "emb", shard_rows=5)
    d = EmbeddingDir.open(tmp_path / "emb")
    assert [s.rows for s in d.shards] == [5, 5, 2]
    assert d.live_rows == 12
    table = _table(tmp_path / "emb")
    assert table.schema.field("id").type == pa.int64()
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 512)
    ids = table.column("id").to_pylist()
    assert len(set(ids)) == len(ids) == 12
    vectors = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert d.model == MODEL
    assert d.model_options == {"image_size": SIZE}


def test_readable_without_embedsearch_by_pandas_and_duckdb(tmp_path, image_folder) -> None:
    import duckdb
    import pandas as pd

    _run(image_folder, tmp_path / "emb")
    frame = pd.concat(pd.read_parquet(p) for p in glob.glob(f"{tmp_path}/emb/part-*.parquet"))
    assert len(frame) == 12
    assert len(frame["embedding"].iloc[0]) == 512
    count = (
        duckdb.connect()
        .execute(f"SELECT count(DISTINCT id) FROM '{tmp_path}/emb/part-*.parquet'")
        .fetchall()[0][0]
    )
    assert count == 12


def test_rerun_embeds_only_new_files_and_changed_files_get_new_ids(
    tmp_path, image_folder, make_images
) -> None:
    out = tmp_path / "emb"
    first = _run(image_folder, out)
    assert first.embedded == 12
    again = _run(image_folder, out)
    assert again.embedded == 0
    assert again.already_present == 12
    assert again.shards_written == []
    make_images(image_folder / "new", 3, seed=7)
    shutil.copy(image_folder / "img_0001.jpg", image_folder / "img_0000.jpg")  # content changed
    third = _run(image_folder, out)
    assert third.embedded == 4
    assert third.already_present == 11
    assert third.superseded == 1
    d = EmbeddingDir.open(out)
    assert d.live_rows == 15
    assert d.rows == 16
    live = pq.read_table(d.shard_paths()[0]).to_pylist()[0]
    assert live["source"].endswith("img_0000.jpg")
    assert live["id"] in d.superseded_ids
    from embedsearch.store.reader import iter_batches

    rows = [r for b in iter_batches(d, ["id", "source"]) for r in b.to_pylist()]
    sources = [r["source"] for r in rows]
    assert len(rows) == 15
    assert len(set(sources)) == 15
    ids = _table(out).column("id").to_pylist()
    assert len(set(ids)) == len(ids)  # never reused


def test_different_model_on_existing_dir_is_refused(tmp_path, image_folder) -> None:
    _run(image_folder, tmp_path / "emb")
    with pytest.raises(MismatchError, match="refusing to mix"):
        _run(image_folder, tmp_path / "emb", image_size=48)


def test_text_table_carries_metadata_columns(tmp_path) -> None:
    path = tmp_path / "captions.jsonl"
    path.write_text(
        '{"caption": "a red circle", "label": 3, "url": "u1"}\n'
        '{"caption": "", "label": 4, "url": "u2"}\n'
    )
    summary = _run(path, tmp_path / "emb", model="tiny-clip", image_size=None, text_col="caption")
    assert summary.embedded == 1
    assert summary.failed == 1
    (row,) = _table(tmp_path / "emb").to_pylist()
    assert row["source"] == "a red circle"
    assert row["label"] == 3
    assert row["url"] == "u1"


def test_duplicate_lines_are_kept_once_each_across_reruns(tmp_path) -> None:
    path = tmp_path / "docs.txt"
    path.write_text("same\nsame\nother\n")
    out = tmp_path / "emb"
    assert _run(path, out, model="tiny-clip", image_size=None).embedded == 3
    again = _run(path, out, model="tiny-clip", image_size=None)
    assert again.embedded == 0
    assert again.already_present == 3


def test_nothing_embeddable_is_an_input_error(tmp_path) -> None:
    (tmp_path / "in").mkdir()
    with pytest.raises(InputError, match="no images found"):
        _run(tmp_path / "in", tmp_path / "emb")
    (tmp_path / "in" / "bad.jpg").write_bytes(b"junk")
    with pytest.raises(InputError, match="nothing could be embedded: 1 input"):
        _run(tmp_path / "in", tmp_path / "emb2")
    assert pq.read_table(tmp_path / "emb2" / ".embedsearch" / "errors.parquet").num_rows == 1


def test_failures_are_retried_and_cleared_once_fixed(tmp_path, image_folder) -> None:
    (image_folder / "broken.png").write_bytes(b"junk")
    out = tmp_path / "emb"
    assert _run(image_folder, out).failed == 1
    Image.new("RGB", (30, 30), (3, 4, 5)).save(image_folder / "broken.png")
    summary = _run(image_folder, out)
    assert summary.embedded == 1
    assert summary.failed == 0
    assert pq.read_table(out / ".embedsearch" / "errors.parquet").num_rows == 0
    assert EmbeddingDir.open(out).manifest.totals.failures == 0


def test_debris_of_a_crash_is_removed_and_not_counted(tmp_path, image_folder) -> None:
    out = tmp_path / "emb"
    _run(image_folder, out)
    (out / "part-00007.parquet").write_bytes(b"half a shard")  # renamed but never listed
    (out / ".part.999999999.abcd.tmp").write_bytes(b"tmp of a dead writer")
    _run(image_folder, out)
    assert not (out / "part-00007.parquet").exists()
    assert not (out / ".part.999999999.abcd.tmp").exists()


def test_workers_give_the_same_rows_as_in_process_decoding(tmp_path, image_folder) -> None:
    _run(image_folder, tmp_path / "a", workers=0)
    _run(image_folder, tmp_path / "b", workers=2)
    a = {r["source"]: (r["id"], r["embedding"]) for r in _table(tmp_path / "a").to_pylist()}
    b = {r["source"]: (r["id"], r["embedding"]) for r in _table(tmp_path / "b").to_pylist()}
    assert a.keys() == b.keys()
    for source in a:
        assert a[source][0] == b[source][0]
        np.testing.assert_allclose(a[source][1], b[source][1], atol=1e-5)


def test_an_open_clip_model_records_its_preprocessing_in_the_manifest(tmp_path, image_folder):
    from embedsearch.encoders import load_encoder

    _run(image_folder, tmp_path / "emb", model="tiny-clip", image_size=None)
    recorded = EmbeddingDir.open(tmp_path / "emb").manifest.preprocess
    assert recorded == load_encoder("tiny-clip").config.preprocess_cfg


def test_the_recorded_preprocessing_names_the_interpolation(tmp_path, image_folder):
    _run(image_folder, tmp_path / "emb", model="tiny-clip", image_size=None)
    recorded = EmbeddingDir.open(tmp_path / "emb").manifest.preprocess or {}
    assert recorded.get("interpolation") in ("bicubic", "bilinear", "nearest")


def test_a_simclr_manifest_has_no_preprocess_key(tmp_path, image_folder):
    import json

    from embedsearch.store.embedding_dir import manifest_path

    _run(image_folder, tmp_path / "emb")
    assert "preprocess" not in json.loads(manifest_path(tmp_path / "emb").read_text())
