"""Folder entries that are not plain image files: each is embedded or listed with a reason."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from embedsearch.data.decode import MAX_IMAGE_BYTES, DecodeError, read_image_bytes
from embedsearch.data.sources import display_path, open_source, source_path, walk_image_folder
from embedsearch.store.embedding_dir import EmbeddingDir

EMBED = ["--model", "simclr:resnet18", "--image-size", "32", "--batch-size", "4"]
LATIN1_NAME = b"caf\xe9.jpg"  # a file name that is not UTF-8


def _errors(out) -> dict[str, str]:
    table = EmbeddingDir.open(out).read_errors().to_pylist()
    return {os.path.basename(row["source"]): row["reason"] for row in table}


def _sources(out) -> list[str]:
    return [
        source
        for shard in sorted(out.glob("part-*.parquet"))
        for source in pq.read_table(shard, columns=["source"]).column("source").to_pylist()
    ]


@pytest.fixture
def latin1_folder(tmp_path, make_images):
    folder = tmp_path / "photos"
    (first,) = make_images(folder, 1)
    shutil.copy(first, os.path.join(os.fsencode(folder), LATIN1_NAME))
    return folder


def test_non_utf8_file_name_is_embedded_under_its_escaped_name(
    latin1_folder, tmp_path, run_cli
) -> None:
    out = tmp_path / "emb"
    result = run_cli("embed", latin1_folder, "--out", out, *EMBED, "--workers", "0")
    assert result.exit_code == 0, result.stderr
    assert sorted(os.path.basename(s) for s in _sources(out)) == ["caf\\xe9.jpg", "img_0000.jpg"]


def test_non_utf8_file_name_embeds_with_worker_processes(latin1_folder, tmp_path, run_cli) -> None:
    out = tmp_path / "emb"
    result = run_cli("embed", latin1_folder, "--out", out, *EMBED, "--workers", "2")
    assert result.exit_code == 0, result.stderr
    assert len(_sources(out)) == 2


def test_escaped_source_leads_back_to_the_file(latin1_folder) -> None:
    path = os.path.join(os.fsdecode(latin1_folder), os.fsdecode(LATIN1_NAME))
    assert os.path.isfile(source_path(display_path(path)))


def test_fifo_named_jpg_is_listed_not_waited_on(tmp_path, make_images) -> None:
    folder = tmp_path / "photos"
    make_images(folder, 2)
    os.mkfifo(folder / "x.jpg")
    out = tmp_path / "emb"
    code = "from embedsearch.cli.app import main; main()"
    argv = [sys.executable, "-c", code, "embed", str(folder), "--out", str(out), *EMBED]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    done = subprocess.run(
        [*argv, "--workers", "0"], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    assert _errors(out) == {"x.jpg": "not a regular file (FIFO)"}


def test_read_image_bytes_refuses_a_fifo_without_blocking(tmp_path) -> None:
    os.mkfifo(tmp_path / "x.jpg")
    with pytest.raises(DecodeError, match=r"not a regular file \(FIFO\)"):
        read_image_bytes(tmp_path / "x.jpg")


def test_huge_file_is_refused_before_reading(tmp_path) -> None:
    big = tmp_path / "big.jpg"
    with open(big, "wb") as f:
        f.truncate(MAX_IMAGE_BYTES + 1)  # sparse: nothing is written, a read would be huge
    with pytest.raises(DecodeError, match="file too large"):
        read_image_bytes(big)


def test_symlinked_subdirectory_is_followed(tmp_path, make_images) -> None:
    make_images(tmp_path / "elsewhere", 2)
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "linked").symlink_to(tmp_path / "elsewhere")
    entries = list(walk_image_folder(tmp_path / "photos"))
    assert [(os.path.basename(e.path), e.error) for e in entries] == [
        ("img_0000.jpg", None),
        ("img_0001.jpg", None),
    ]


def test_symlink_loop_is_listed_once_with_its_reason(tmp_path, make_images) -> None:
    make_images(tmp_path / "photos", 1)
    (tmp_path / "photos" / "loop").symlink_to(tmp_path / "photos")
    errors = [e.error for e in walk_image_folder(tmp_path / "photos") if e.error]
    assert errors == [f"directory already read as {tmp_path / 'photos'}"]


def test_broken_symlink_named_jpg_is_listed(tmp_path) -> None:
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "missing.jpg")
    assert [e.error for e in walk_image_folder(tmp_path)] == ["broken symbolic link"]


def test_source_count_includes_listed_entries(tmp_path, make_images) -> None:
    make_images(tmp_path, 2)
    os.mkfifo(tmp_path / "x.jpg")
    source = open_source(tmp_path)
    assert source.count() == len(list(source)) == 3


def _walk_as_nobody(folder: str) -> list[list]:
    """walk_image_folder in a forked child that dropped root (root reads every directory)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            os.close(read)
            os.setgid(65534)
            os.setuid(65534)
            rows = [[e.path, e.error] for e in walk_image_folder(folder)]
            os.write(write, json.dumps(rows).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to the nobody user")
def test_unreadable_subdirectory_is_listed_for_a_normal_user(make_images) -> None:
    root = tempfile.mkdtemp(prefix="embedsearch-perm-")  # tmp_path's parents are root-only
    try:
        os.chmod(root, 0o755)
        make_images(Path(root) / "locked", 1)
        make_images(Path(root), 1)
        os.chmod(os.path.join(root, "locked"), 0o000)
        rows = _walk_as_nobody(root)
        assert rows == [
            [os.path.join(root, "img_0000.jpg"), None],
            [os.path.join(root, "locked"), "cannot list directory: Permission denied"],
        ]
    finally:
        os.chmod(os.path.join(root, "locked"), 0o755)
        shutil.rmtree(root)


def test_clip_pairs_folder_counts_a_fifo_as_skipped(tmp_path, make_images) -> None:
    from embedsearch.data.pairs import load_pairs

    for path in make_images(tmp_path, 2):
        path.with_suffix(".txt").write_text("a caption")
    os.mkfifo(tmp_path / "x.jpg")
    pairs = load_pairs(tmp_path)
    assert dict(pairs.report.skipped) == {"not a regular file (FIFO)": 1}
