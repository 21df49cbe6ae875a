"""An index built by many workers: train once, add shards, merge (in memory or on disk).

The merged index must be the one-process build with the same trained index: the same keys and
codes in every inverted list, in the same order, and the same search results.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embedsearch.errors import FormatError, InputError
from embedsearch.index import Searcher, layout
from embedsearch.index.merge import merge_shards
from embedsearch.index.shards import (
    TRAINED_FILE,
    add_shard,
    shard_name,
    shards_dir_of,
    slice_of,
    train_shards,
)
from embedsearch.store.embedding_dir import EmbeddingDir

ROWS, DIM = 3000, 16


@pytest.fixture
def corpus(tmp_path: Path, vectors, write_emb) -> tuple[Path, np.ndarray]:
    x = vectors(ROWS, DIM, 0)
    write_emb(tmp_path / "emb", x, shard_rows=500)  # 6 Parquet shards to share out
    return tmp_path / "emb", x


def _trained_copy(out: Path, keep: Path) -> Path:
    shutil.copy(shards_dir_of(out) / TRAINED_FILE, keep)
    return keep


def _one_process(trained: Path, emb: Path):
    """The one-process build with the same trained index: every stored row added in order."""
    import faiss

    from embedsearch.store.reader import iter_vectors

    index = faiss.read_index(str(trained))
    for ids, block in iter_vectors(emb):
        index.add_with_ids(block, ids)
    return index


def _lists(index) -> list[tuple[list[int], bytes]]:
    import faiss

    invlists = faiss.extract_index_ivf(index).invlists
    out = []
    for number in range(invlists.nlist):
        size = invlists.list_size(number)
        ids = faiss.rev_swig_ptr(invlists.get_ids(number), size).tolist() if size else []
        codes = faiss.rev_swig_ptr(invlists.get_codes(number), size * invlists.code_size)
        out.append((ids, bytes(codes) if size else b""))
    return out


def _build(out: Path, emb: Path, max_memory: str, shards: int = 2, **kwargs) -> Path:
    train_shards([emb], out, kind="ivfsq", max_memory=max_memory)
    trained = _trained_copy(out, out.parent / f"{out.name}-trained.faiss")
    for i in range(shards):
        add_shard(out, shard_index=i, num_shards=shards, **kwargs)
    merge_shards(out)
    return trained


@pytest.mark.parametrize("max_memory", ["1G", "40K"], ids=["in-memory", "on-disk"])
def test_merged_lists_equal_a_one_process_build(tmp_path, corpus, max_memory) -> None:
    emb, x = corpus
    out = tmp_path / "idx"
    trained = _build(out, emb, max_memory, block_bytes=20_000)  # several blocks a worker
    searcher = Searcher.open(out)
    assert _lists(searcher.index) == _lists(_one_process(trained, emb))


@pytest.mark.parametrize("max_memory", ["1G", "40K"], ids=["in-memory", "on-disk"])
def test_merged_search_results_equal_a_one_process_build(tmp_path, corpus, max_memory) -> None:
    from embedsearch.index.search_params import apply_search_params

    emb, x = corpus
    out = tmp_path / "idx"
    trained = _build(out, emb, max_memory)
    searcher = Searcher.open(out)
    reference = _one_process(trained, emb)
    apply_search_params(reference, searcher.index_info.search_params)
    _, expected = reference.search(x[:50], 10)
    assert np.array_equal(searcher.search_raw(x[:50], 10)[1], expected)


def test_merged_metadata_holds_every_row_once(tmp_path, corpus) -> None:
    emb, _ = corpus
    out = tmp_path / "idx"
    _build(out, emb, "1G")
    keys = np.sort(Searcher.open(out).store.keys)
    assert keys.tolist() == list(range(ROWS))


def test_index_json_says_on_disk_when_the_lists_exceed_max_memory(tmp_path, corpus) -> None:
    emb, _ = corpus
    out = tmp_path / "idx"
    _build(out, emb, "40K")
    info = json.loads((out / "index.json").read_text())
    assert (info["storage"], info["ivf_data"]["file"]) == ("ondisk", "index.ivfdata")


def test_index_json_says_memory_when_the_lists_fit(tmp_path, corpus) -> None:
    emb, _ = corpus
    out = tmp_path / "idx"
    _build(out, emb, "1G")
    assert json.loads((out / "index.json").read_text())["storage"] == "memory"


def test_recall_is_measured_after_the_merge(tmp_path, corpus) -> None:
    emb, _ = corpus
    out = tmp_path / "idx"
    _build(out, emb, "40K")
    recall = layout.read_info(out).recall
    assert recall.recall_at_k is not None and recall.queries > 0


def test_the_shards_dir_is_removed_once_published(tmp_path, corpus) -> None:
    emb, _ = corpus
    out = tmp_path / "idx"
    _build(out, emb, "1G")
    assert not shards_dir_of(out).exists()


def test_slices_are_disjoint_and_cover_every_parquet_shard(corpus) -> None:
    emb, _ = corpus
    d = EmbeddingDir.open(emb)
    slices = [slice_of([d], i, 4)[0] for i in range(4)]
    flat = [file for s in slices for file in s]
    assert sorted(flat) == sorted(s.file for s in d.shards) and len(set(flat)) == len(flat)


def test_a_missing_shard_is_named_and_merge_refuses(tmp_path, corpus) -> None:
    emb, _ = corpus
    out = tmp_path / "idx"
    train_shards([emb], out, kind="ivfsq", max_memory="1G")
    add_shard(out, shard_index=0, num_shards=2)
    with pytest.raises(InputError, match=r"shards 1 of 2 are not finished"):
        merge_shards(out)


def test_a_crashed_worker_is_rerun_alone(tmp_path, corpus) -> None:
    emb, x = corpus
    out = tmp_path / "idx"
    train_shards([emb], out, kind="ivfsq", max_memory="1G")
    trained = _trained_copy(out, tmp_path / "trained.faiss")
    add_shard(out, shard_index=0, num_shards=2)
    first = shards_dir_of(out) / shard_name(0, 2)
    before = {p.name: p.stat().st_mtime_ns for p in first.iterdir()}
    # what a worker killed mid-way leaves: a staging dir of a dead process, with partial files
    debris = shards_dir_of(out) / f".{shard_name(1, 2)}.tmp-999999999-00000000"
    debris.mkdir()
    (debris / "index-00000.faiss").write_bytes(b"partial")
    add_shard(out, shard_index=1, num_shards=2)
    assert {p.name: p.stat().st_mtime_ns for p in first.iterdir()} == before
    merge_shards(out)
    assert _lists(Searcher.open(out).index) == _lists(_one_process(trained, emb))


def test_a_finished_shard_is_not_redone(tmp_path, corpus) -> None:
    emb, _ = corpus
    out = tmp_path / "idx"
    train_shards([emb], out, kind="ivfsq", max_memory="1G")
    first = add_shard(out, shard_index=0, num_shards=2)
    again = add_shard(out, shard_index=0, num_shards=2)
    assert again.seconds == first.seconds  # read back from shard.json, not added again


def test_a_source_changed_since_training_is_refused(tmp_path, corpus, vectors, write_emb) -> None:
    emb, _ = corpus
    out = tmp_path / "idx"
    train_shards([emb], out, kind="ivfsq", max_memory="1G")
    write_emb(emb, vectors(10, DIM, 5), start_id=ROWS)
    with pytest.raises(InputError, match="changed since the index was trained"):
        add_shard(out, shard_index=0, num_shards=1)


def test_hnsw_cannot_be_built_in_shards(tmp_path, corpus) -> None:
    emb, _ = corpus
    with pytest.raises(InputError, match="cannot be built in shards"):
        train_shards([emb], tmp_path / "idx", kind="hnsw")


def test_rows_cannot_be_appended_to_an_on_disk_index(tmp_path, corpus, vectors, write_emb) -> None:
    from embedsearch.index import append_index

    emb, _ = corpus
    out = tmp_path / "idx"
    _build(out, emb, "40K")
    write_emb(emb, vectors(10, DIM, 5), start_id=ROWS)
    with pytest.raises(InputError, match="keeps its lists on disk"):
        append_index([emb], out)


# -- opening: on disk, moved, damaged -------------------------------------------------------------


def test_a_moved_on_disk_index_answers(tmp_path, corpus) -> None:
    emb, x = corpus
    out = tmp_path / "idx"
    _build(out, emb, "40K")
    expected = Searcher.open(out).search_raw(x[:5], 5)[1]
    moved = tmp_path / "elsewhere" / "idx"
    moved.parent.mkdir()
    os.rename(out, moved)
    assert np.array_equal(Searcher.open(moved).search_raw(x[:5], 5)[1], expected)


def test_opening_an_on_disk_index_prints_nothing(tmp_path, corpus, capfd) -> None:
    emb, _ = corpus
    out = tmp_path / "idx"
    _build(out, emb, "40K")
    capfd.readouterr()
    Searcher.open(out)
    assert capfd.readouterr().out == ""


def test_on_disk_lists_are_memory_mapped_read_only(tmp_path, corpus) -> None:
    import faiss

    emb, _ = corpus
    out = tmp_path / "idx"
    _build(out, emb, "40K")
    searcher = Searcher.open(out)  # keeps the index alive while its lists are looked at
    lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(searcher.index).invlists)
    assert isinstance(lists, faiss.OnDiskInvertedLists) and lists.read_only


def test_a_truncated_lists_file_is_refused_on_open(tmp_path, corpus) -> None:
    emb, _ = corpus
    out = tmp_path / "idx"
    _build(out, emb, "40K")
    data = out / "index.ivfdata"
    os.truncate(data, data.stat().st_size - 8)
    with pytest.raises(FormatError, match="index.ivfdata is corrupt"):
        Searcher.open(out)


def test_a_flipped_byte_in_the_lists_is_found_by_verify(tmp_path, corpus) -> None:
    emb, _ = corpus
    out = tmp_path / "idx"
    _build(out, emb, "40K")
    data = out / "index.ivfdata"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(FormatError, match="index.ivfdata is corrupt"):
        layout.verify_index_dir(out)


def test_a_flipped_byte_in_an_on_disk_index_faiss_is_refused_on_open(tmp_path, corpus) -> None:
    emb, _ = corpus
    out = tmp_path / "idx"
    _build(out, emb, "40K")
    index_file = out / "index.faiss"
    raw = bytearray(index_file.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    index_file.write_bytes(bytes(raw))
    with pytest.raises(FormatError, match="index.faiss is corrupt"):
        Searcher.open(out)


# -- the CLI and torchrun -------------------------------------------------------------------------


def _cli(*args: object, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "embedsearch", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **env},
    )


def test_cli_steps_build_an_index_and_merge_prints_only_json(tmp_path, corpus) -> None:
    emb, _ = corpus
    out = tmp_path / "idx"
    common = [emb, "--out", out, "--kind", "ivfsq", "--max-memory", "40K"]
    assert _cli("index", *common, "--train-only").returncode == 0
    for i in (0, 1):
        assert _cli("index", *common, "--num-shards", 2, "--shard-index", i).returncode == 0
    merged = _cli("index", *common, "--merge", "--format", "json")
    assert json.loads(merged.stdout)["storage"] == "ondisk"


def test_cli_shard_index_without_num_shards_is_a_usage_error(tmp_path, corpus, run_cli) -> None:
    emb, _ = corpus
    result = run_cli("index", emb, "--out", tmp_path / "idx", "--shard-index", "0")
    assert (result.exit_code, result.stderr.strip()) == (
        2,
        "error: --shard-index needs --num-shards",
    )


@pytest.mark.parametrize("ranks", [1, 2])
def test_torchrun_ranks_build_the_one_process_index(tmp_path, corpus, ranks) -> None:
    emb, x = corpus
    out = tmp_path / "idx"
    common = [emb, "--out", out, "--kind", "ivfsq", "--max-memory", "40K"]
    assert _cli("index", *common, "--train-only").returncode == 0
    trained = _trained_copy(out, tmp_path / "trained.faiss")
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(ranks)]
    launch += ["--master-port", str(29531 + ranks), "-m", "embedsearch", "index"]
    result = subprocess.run(
        [*launch, *map(str, common)], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert _lists(Searcher.open(out).index) == _lists(_one_process(trained, emb))


def test_an_on_disk_merge_is_not_noted_as_over_the_budget(tmp_path, corpus) -> None:
    emb, _ = corpus
    out = tmp_path / "idx"
    _build(out, emb, "40K")
    assert not any("no index kind fits" in note for note in layout.read_info(out).notes)
