"""manifest.json as a typed document: files of the first release read, rewrite and open."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from embedsearch.errors import FormatError
from embedsearch.store import EmbeddingDir, iter_vectors
from embedsearch.store.manifest import Manifest, ShardInfo

DATA = Path(__file__).parent / "data"


def test_manifest_of_the_first_release_rewrites_to_the_same_json(tmp_path) -> None:
    original = json.loads((DATA / "manifest_v1.json").read_text())
    Manifest.read(DATA / "manifest_v1.json").write(tmp_path / "manifest.json")
    assert json.loads((tmp_path / "manifest.json").read_text()) == original


def test_manifest_of_the_first_release_is_typed() -> None:
    manifest = Manifest.read(DATA / "manifest_v1.json")
    assert manifest.shards[0] == ShardInfo("part-00000.parquet", 2, manifest.shards[0].sha256, 0, 1)
    assert manifest.totals.live_rows == 4


def test_a_fresh_manifest_has_no_updated_key(tmp_path) -> None:
    EmbeddingDir.create_or_open(
        tmp_path / "e",
        model="m",
        model_options={},
        fingerprint="f",
        modality="image",
        dim=2,
        source="s",
    )
    assert "updated" not in json.loads(
        (tmp_path / "e" / ".embedsearch" / "manifest.json").read_text()
    )


def test_dir_written_by_the_first_release_opens_and_reads(tmp_path) -> None:
    shutil.copytree(DATA / "emb_v1", tmp_path / "emb")
    d = EmbeddingDir.open(tmp_path / "emb")
    ids = np.concatenate([block for block, _ in iter_vectors(d)])
    assert ids.tolist() == [1, 2, 3, 4]  # id 0 was superseded
    assert d.read_errors().column("source").to_pylist() == ["bad.jpg"]


def test_dir_written_by_the_first_release_accepts_new_rows(tmp_path) -> None:
    from embedsearch.store import write_embedding_dir

    shutil.copytree(DATA / "emb_v1", tmp_path / "emb")
    d = write_embedding_dir(
        tmp_path / "emb",
        np.eye(4, dtype=np.float32)[:1],
        model="simclr:resnet18",
        fingerprint="f" * 32,
    )
    assert d.live_rows == 5
    assert d.next_id == 6


def test_manifest_that_is_not_json_is_one_format_error(tmp_path) -> None:
    (tmp_path / "manifest.json").write_text("[1, 2")
    with pytest.raises(FormatError, match="manifest.json is not valid JSON"):
        EmbeddingDir.open(tmp_path)


def test_manifest_with_a_malformed_shard_entry_is_one_format_error(tmp_path) -> None:
    manifest = json.loads((DATA / "manifest_v1.json").read_text())
    manifest["shards"][0] = {"file": "part-00000.parquet"}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FormatError, match="is malformed"):
        EmbeddingDir.open(tmp_path)


def test_manifest_of_a_newer_release_is_refused(tmp_path) -> None:
    manifest = json.loads((DATA / "manifest_v1.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "format_version": 2}))
    with pytest.raises(FormatError, match="upgrade embedsearch"):
        EmbeddingDir.open(tmp_path)
