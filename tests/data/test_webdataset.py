"""WebDataset tar shards: samples grouped by key, read by offset, embedded and trained on."""

from __future__ import annotations

import glob
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedsearch.data.decode import DecodeError
from embedsearch.data.pairs import load_pairs
from embedsearch.data.sources import WebDatasetSource, open_source
from embedsearch.data.webdataset import expand_shards, iter_samples, load_pair_image
from embedsearch.store.embedding_dir import ERRORS

ARGS = ["--model", "simclr:resnet18", "--image-size", "32", "--workers", "0", "--batch-size", "4"]


def _jpeg(seed: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(base).resize((40, 48), Image.Resampling.BICUBIC).save(buffer, "JPEG")
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shards(
    folder: Path, shards: int = 2, per_shard: int = 3, suffix: str = ".tar"
) -> list[Path]:
    """img2dataset's layout: ``key.jpg`` + ``key.txt`` + ``key.json`` per sample."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in range(shards):
        path = folder / f"{s:05d}{suffix}"
        with tarfile.open(path, "w:gz" if suffix != ".tar" else "w") as tar:
            for i in range(per_shard):
                key = f"{s:05d}{i:04d}"
                meta = {"key": key, "url": f"http://x/{key}.jpg", "width": 40, "exif": {"a": 1}}
                _add(tar, f"{key}.jpg", _jpeg(s * 100 + i))
                _add(tar, f"{key}.txt", f"caption {key}".encode())
                _add(tar, f"{key}.json", json.dumps(meta).encode())
        paths.append(path)
    return paths


def _rows(out: Path) -> list[dict]:
    tables = [pq.read_table(p) for p in sorted(glob.glob(f"{out}/part-*.parquet"))]
    return pa.concat_tables(tables).to_pylist() if tables else []


def test_brace_range_names_every_shard_in_order(tmp_path) -> None:
    write_shards(tmp_path, shards=3)
    names = [p.name for p in expand_shards(f"{tmp_path}/{{00000..00002}}.tar")]
    assert names == ["00000.tar", "00001.tar", "00002.tar"]


def test_members_of_one_key_are_one_sample(tmp_path) -> None:
    (shard,) = write_shards(tmp_path, shards=1, per_shard=2)
    samples = list(iter_samples(shard))
    assert [sorted(s.members) for s in samples] == [["jpg", "json", "txt"]] * 2


def test_member_bytes_are_read_by_offset(tmp_path) -> None:
    (shard,) = write_shards(tmp_path, shards=1, per_shard=2)
    second = list(iter_samples(shard))[1]
    assert second.members["txt"].read() == b"caption 000000001"


def test_source_is_shard_slash_key(tmp_path) -> None:
    write_shards(tmp_path, shards=1, per_shard=1)
    (item,) = list(open_source(f"{tmp_path}/00000.tar"))
    assert item.source == f"{tmp_path.resolve()}/00000.tar/000000000"


def test_json_fields_and_caption_are_metadata(tmp_path) -> None:
    write_shards(tmp_path, shards=1, per_shard=1)
    (item,) = list(WebDatasetSource(f"{tmp_path}/00000.tar"))
    assert (item.metadata["url"], item.metadata["txt"], item.metadata["exif"]) == (
        "http://x/000000000.jpg",
        "caption 000000000",
        '{"a": 1}',
    )


def test_a_json_key_named_id_is_carried_as_input_id(tmp_path) -> None:
    with tarfile.open(tmp_path / "a.tar", "w") as tar:
        _add(tar, "k.jpg", _jpeg(0))
        _add(tar, "k.json", b'{"id": 7}')
    (item,) = list(WebDatasetSource(f"{tmp_path}/a.tar"))
    assert item.metadata["input_id"] == 7


def test_a_truncated_shard_member_is_a_decode_error(tmp_path) -> None:
    (shard,) = write_shards(tmp_path, shards=1, per_shard=1)
    member = next(iter_samples(shard)).members["jpg"]
    shard.write_bytes(shard.read_bytes()[: member.offset + 10])
    with pytest.raises(DecodeError, match="shorter than its header"):
        member.read()


def test_embedded_shards_match_the_same_images_in_a_folder(run_cli, tmp_path) -> None:
    write_shards(tmp_path / "shards", shards=1, per_shard=3)
    folder = tmp_path / "folder"
    folder.mkdir()
    for i in range(3):
        (folder / f"00000{i:04d}.jpg").write_bytes(_jpeg(i))
    run_cli("embed", f"{tmp_path}/shards/00000.tar", "--out", tmp_path / "a", *ARGS)
    run_cli("embed", folder, "--out", tmp_path / "b", *ARGS)
    from_shards = np.array([r["embedding"] for r in _rows(tmp_path / "a")])
    from_folder = np.array([r["embedding"] for r in _rows(tmp_path / "b")])
    np.testing.assert_allclose(from_shards, from_folder, atol=1e-5)


def test_embed_reads_a_brace_range_of_shards(run_cli, tmp_path) -> None:
    write_shards(tmp_path, shards=2, per_shard=3)
    result = run_cli("embed", f"{tmp_path}/{{00000..00001}}.tar", "--out", tmp_path / "e", *ARGS)
    assert result.exit_code == 0
    assert len(_rows(tmp_path / "e")) == 6


def test_rerun_embeds_nothing_new(run_cli, tmp_path) -> None:
    write_shards(tmp_path, shards=2, per_shard=2)
    spec = f"{tmp_path}/{{00000..00001}}.tar"
    run_cli("embed", spec, "--out", tmp_path / "e", *ARGS)
    run_cli("embed", spec, "--out", tmp_path / "e", *ARGS)
    assert len(_rows(tmp_path / "e")) == 4


def test_a_sample_without_an_image_goes_to_errors_parquet(run_cli, tmp_path) -> None:
    with tarfile.open(tmp_path / "a.tar", "w") as tar:
        _add(tar, "good.jpg", _jpeg(0))
        _add(tar, "lonely.txt", b"no picture here")
    run_cli("embed", f"{tmp_path}/a.tar", "--out", tmp_path / "e", *ARGS)
    errors = pq.read_table(tmp_path / "e" / ERRORS).to_pylist()
    assert [e["source"].rsplit("/", 1)[-1] for e in errors] == ["lonely"]


def test_a_broken_json_sidecar_goes_to_errors_parquet(run_cli, tmp_path) -> None:
    with tarfile.open(tmp_path / "a.tar", "w") as tar:
        _add(tar, "k.jpg", _jpeg(0))
        _add(tar, "k.json", b"{not json")
    run_cli("embed", f"{tmp_path}/a.tar", "--out", tmp_path / "e", *ARGS)
    (error,) = pq.read_table(tmp_path / "e" / ERRORS).to_pylist()
    assert "not JSON" in error["reason"]


def test_gzipped_shards_embed_too(run_cli, tmp_path) -> None:
    write_shards(tmp_path, shards=1, per_shard=2, suffix=".tar.gz")
    run_cli("embed", f"{tmp_path}/00000.tar.gz", "--out", tmp_path / "e", *ARGS)
    assert len(_rows(tmp_path / "e")) == 2


def test_a_missing_shard_is_a_one_line_error(run_cli, tmp_path) -> None:
    write_shards(tmp_path, shards=1)
    result = run_cli("embed", f"{tmp_path}/{{00000..00001}}.tar", "--out", tmp_path / "e", *ARGS)
    assert (result.exit_code, result.stderr.count("\n")) == (2, 1)


def test_pairs_come_from_shards(tmp_path) -> None:
    write_shards(tmp_path, shards=2, per_shard=2)
    pairs = load_pairs(f"{tmp_path}/{{00000..00001}}.tar")
    assert pairs.captions == [f"caption 0000{s}000{i}" for s in range(2) for i in range(2)]


def test_a_pair_image_decodes_from_its_shard(tmp_path) -> None:
    write_shards(tmp_path, shards=1, per_shard=1)
    pairs = load_pairs(f"{tmp_path}/00000.tar")
    assert load_pair_image(pairs.images[0]).size == (40, 48)


def test_pairs_refuse_compressed_shards(tmp_path) -> None:
    write_shards(tmp_path, shards=1, suffix=".tar.gz")
    with pytest.raises(Exception, match="decompress the shards"):
        load_pairs(f"{tmp_path}/00000.tar.gz")


def test_pretrain_clip_trains_on_shards(run_cli, tmp_path) -> None:
    write_shards(tmp_path / "shards", shards=2, per_shard=8)
    result = run_cli(
        "pretrain",
        "clip",
        f"{tmp_path}/shards/{{00000..00001}}.tar",
        *["--out", tmp_path / "run", "--epochs", "1", "--batch-size", "8"],
        *["--workers", "0", "--threads", "1", "--val-fraction", "0.25"],
    )
    assert "16 of 16 pairs used" in result.stderr


def test_text_modality_embeds_the_captions(tmp_path) -> None:
    write_shards(tmp_path, shards=1, per_shard=2)
    items = list(open_source(f"{tmp_path}/00000.tar", modality="text"))
    assert [i.text for i in items] == ["caption 000000000", "caption 000000001"]
