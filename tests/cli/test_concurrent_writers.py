"""Two writers of one output dir, as real processes: the second is refused in one line, and
nothing is lost or duplicated."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds

from embedsearch.store import write_embedding_dir

ARGS = ["--model", "simclr:resnet18", "--image-size", "32", "--workers", "0", "--batch-size", "2"]


def _embed_cmd(images: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "embedsearch", "embed", str(images), "--out", str(out), *ARGS]


def test_two_embeds_into_one_dir_never_duplicate_rows(tmp_path, make_images) -> None:
    images, out = tmp_path / "images", tmp_path / "emb"
    make_images(images, 24)
    first = subprocess.Popen(_embed_cmd(images, out), stderr=subprocess.DEVNULL)
    lock = out / ".embedsearch" / "writer.lock"
    deadline = time.time() + 120
    while time.time() < deadline and not (lock.exists() and lock.stat().st_size):
        time.sleep(0.05)
    second = subprocess.run(_embed_cmd(images, out), capture_output=True, text=True, timeout=300)
    first.wait(timeout=300)
    ids = ds.dataset(out).to_table(columns=["id"]).column("id").to_pylist()
    assert (len(ids), len(set(ids))) == (24, 24)
    assert second.returncode in (0, 2)  # refused while the first ran, or ran after it


def test_a_second_embed_is_refused_naming_the_holder(tmp_path, make_images) -> None:
    images, out = tmp_path / "images", tmp_path / "emb"
    make_images(images, 4)
    holder = _hold(out / ".embedsearch" / "writer.lock")
    try:
        second = subprocess.run(_embed_cmd(images, out), capture_output=True, text=True)
    finally:
        holder.kill()
        holder.wait()
    assert (second.returncode, f"pid {holder.pid}" in second.stderr) == (2, True)


HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from embedsearch.store.runlock import writer_lock
    with writer_lock(Path(sys.argv[1]), "held"):
        print("held", flush=True)
        time.sleep(120)
    """
)


def _hold(lock: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"held"
    return proc


def _unit(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, 16)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_an_append_while_another_writer_holds_the_index_is_refused(tmp_path, run_cli) -> None:
    write_embedding_dir(tmp_path / "a", _unit(200, 0), model="m")
    write_embedding_dir(tmp_path / "b", _unit(50, 1), model="m")
    assert run_cli("index", tmp_path / "a", "--out", tmp_path / "idx").exit_code == 0
    holder = _hold(tmp_path / ".idx.lock")
    try:
        result = run_cli("index", tmp_path / "b", "--out", tmp_path / "idx", "--append")
    finally:
        holder.kill()
        holder.wait()
    assert (result.exit_code, f"pid {holder.pid}" in result.stderr) == (2, True)


APPEND = [sys.executable, "-m", "embedsearch", "index", "--append", "--out"]


def test_two_concurrent_appends_lose_no_rows(tmp_path, run_cli) -> None:
    write_embedding_dir(tmp_path / "a", _unit(200, 0), model="m")
    write_embedding_dir(tmp_path / "b", _unit(50, 1), model="m")
    write_embedding_dir(tmp_path / "c", _unit(50, 2), model="m", fingerprint="m")
    idx = tmp_path / "idx"
    assert run_cli("index", tmp_path / "a", "--out", idx).exit_code == 0
    procs = [
        subprocess.Popen([*APPEND, str(idx), str(tmp_path / n)], stderr=subprocess.PIPE)
        for n in ("b", "c")
    ]
    codes = [p.wait(timeout=300) for p in procs]
    import faiss

    appended = 50 * codes.count(0)
    assert faiss.read_index(str(idx / "index.faiss")).ntotal == 200 + appended
