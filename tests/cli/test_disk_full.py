"""Real full and read-only file systems (a tiny tmpfs), and index files faiss cannot read."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from embedsearch.store.arrays import write_embedding_dir


def _mount(target, options: str) -> None:
    target.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here (needs root in a privileged container): {done.stderr}"
        )


def _unmount(target) -> None:
    import gc

    gc.collect()  # files a failed command left to the garbage collector must close first
    done = subprocess.run(["umount", str(target)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"umount {target}: {done.stderr}"


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB file system, nearly filled: any real write hits ENOSPC."""
    disk = tmp_path / "disk"
    _mount(disk, "size=256k")
    (disk / "filler").write_bytes(b"\0" * 250 * 1024)
    yield disk
    _unmount(disk)


@pytest.fixture
def read_only_disk(tmp_path):
    disk = tmp_path / "ro"
    _mount(disk, "ro,size=64k")
    yield disk
    _unmount(disk)


@pytest.fixture(scope="module")
def emb(tmp_path_factory):
    path = tmp_path_factory.mktemp("src") / "emb"
    vectors = np.random.default_rng(0).standard_normal((2000, 64)).astype(np.float32)
    write_embedding_dir(path, vectors)
    return path


def _last_line(result) -> str:
    return result.stderr.strip().splitlines()[-1]


def test_embed_on_a_full_disk_says_disk_full(small_disk, image_folder, run_cli) -> None:
    out = small_disk / "emb"
    result = run_cli(
        "embed", image_folder, "--out", out, "--model", "simclr:resnet18", "--workers", "0"
    )
    assert result.exit_code == 2
    assert _last_line(result).startswith(f"error: disk full: cannot write {out}/")


def test_index_on_a_full_disk_says_disk_full(small_disk, emb, run_cli) -> None:
    result = run_cli("index", emb, "--out", small_disk / "idx", "--kind", "flat")
    assert result.exit_code == 2
    assert _last_line(result).startswith(f"error: disk full: cannot write {small_disk}/")


def test_read_only_output_dir_is_one_line(read_only_disk, emb, run_cli) -> None:
    result = run_cli("index", emb, "--out", read_only_disk / "idx", "--kind", "flat")
    assert result.exit_code == 2
    assert _last_line(result).startswith("error: read-only file system: cannot write")


@pytest.fixture(scope="module")
def index_dir(emb, tmp_path_factory):
    from embedsearch.index import build_index

    path = tmp_path_factory.mktemp("idx") / "idx"
    build_index([emb], path, kind="flat")
    return path


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda f: f.write_bytes(b"junk"), 'unreadable index file (Index type 0x6b6e756a ("junk")'),
        (lambda f: f.write_bytes(f.read_bytes()[:500]), "index.faiss: unreadable or unwritable"),
    ],
    ids=["junk", "truncated"],
)
def test_index_file_faiss_cannot_read_is_one_line(
    index_dir, tmp_path, run_cli, damage, words
) -> None:
    copy = tmp_path / "idx"
    shutil.copytree(index_dir, copy)
    # an index written before index.json recorded a checksum: faiss itself meets the damage
    info = json.loads((copy / "index.json").read_text())
    del info["index_sha256"]
    (copy / "index.json").write_text(json.dumps(info))
    damage(copy / "index.faiss")
    result = run_cli("query", copy, "--id", "0")
    assert result.exit_code == 2
    assert words in _last_line(result)
