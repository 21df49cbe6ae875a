"""Broken embedding and index dirs: every command ends in one line naming what is wrong."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from embedsearch.store.arrays import write_embedding_dir
from embedsearch.store.embedding_dir import manifest_path


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """An embedding dir of 3 shards and a flat index over it."""
    from embedsearch.index import build_index

    root = tmp_path_factory.mktemp("pristine")
    vectors = np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32)
    write_embedding_dir(root / "emb", vectors, shard_rows=100)
    build_index([root / "emb"], root / "idx", kind="flat")
    return root


@pytest.fixture
def dirs(pristine, tmp_path):
    shutil.copytree(pristine / "emb", tmp_path / "emb")
    shutil.copytree(pristine / "idx", tmp_path / "idx")
    return tmp_path


def _truncate(path) -> None:
    os.truncate(path, os.path.getsize(path) // 2)


def _edit_json(path, **values) -> None:
    data = json.loads(path.read_text())
    data.update(values)
    path.write_text(json.dumps(data))


BREAKS = {
    "truncated shard": lambda d: _truncate(d / "emb" / "part-00001.parquet"),
    "deleted shard": lambda d: (d / "emb" / "part-00001.parquet").unlink(),
    "empty shard": lambda d: (d / "emb" / "part-00001.parquet").write_bytes(b""),
    "garbage manifest": lambda d: manifest_path(d / "emb").write_text("garbage{"),
    "manifest is a list": lambda d: manifest_path(d / "emb").write_text("[]"),
    "manifest shard entry odd": lambda d: _edit_json(manifest_path(d / "emb"), shards=[{}]),
    "manifest wrong dim": lambda d: _edit_json(manifest_path(d / "emb"), dim=7),
}
COMMANDS = {
    "index": lambda d: ["index", d / "emb", "--out", d / "new-idx", "--kind", "flat"],
    "index --append": lambda d: ["index", d / "emb", "--out", d / "idx", "--append"],
    "dedup": lambda d: ["dedup", d / "emb", "--out", d / "dd"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("damage", sorted(BREAKS))
def test_broken_embedding_dir_is_one_line(dirs, run_cli, damage, command) -> None:
    BREAKS[damage](dirs)
    result = run_cli(*COMMANDS[command](dirs))
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")  # after any progress
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("damage", ["truncated shard", "deleted shard", "empty shard"])
def test_broken_shard_is_named(dirs, run_cli, damage) -> None:
    BREAKS[damage](dirs)
    result = run_cli("index", dirs / "emb", "--out", dirs / "new-idx", "--kind", "flat")
    assert "part-00001.parquet" in result.stderr


def test_wrong_manifest_dim_says_so(dirs, run_cli) -> None:
    BREAKS["manifest wrong dim"](dirs)
    result = run_cli("dedup", dirs / "emb", "--out", dirs / "dd")
    # the last line (progress lines of the phase that found it may come before)
    assert result.stderr.strip().splitlines()[-1] == (
        "error: stored vectors have 16 values each, but the manifest says dim 7: "
        "the embedding dir is damaged; re-embed it"
    )


INDEX_BREAKS = {
    "garbage": lambda d: (d / "idx" / "index.json").write_text("garbage{"),
    "a list": lambda d: (d / "idx" / "index.json").write_text("[1, 2]"),
    "odd types": lambda d: _edit_json(d / "idx" / "index.json", ntotal="x", sources=5),
    "wrong dim": lambda d: _edit_json(d / "idx" / "index.json", dim=7),
}


@pytest.mark.parametrize(
    "argv",
    [["info", "{idx}"], ["query", "{idx}", "--id", "0"], ["dedup", "{idx}", "--out", "{dd}"]],
)
@pytest.mark.parametrize("damage", sorted(INDEX_BREAKS))
def test_broken_index_json_is_one_line(dirs, run_cli, damage, argv) -> None:
    INDEX_BREAKS[damage](dirs)
    args = [a.format(idx=dirs / "idx", dd=dirs / "dd") for a in argv]
    result = run_cli(*args)
    assert result.exit_code in (0, 2)  # info may still describe it; nothing may crash
    assert "Traceback" not in result.stderr
