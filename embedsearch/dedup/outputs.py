"""Writing a dedup result dir: pairs, groups, keep/remove lists, histogram, summary.

Everything is assembled in a hidden staging folder beside ``--out`` and renamed into
place at the end, so an interrupted run never leaves a half-written result.

- ``pairs.parquet``: ``id_a, id_b, source_a, source_b, score, exact, dir_a, dir_b``
- ``groups.parquet``: ``group, id, source, keep, dir``
- ``keep.txt`` / ``remove.txt``: one source per line (rows of the main input only)
- ``histogram.png`` / ``histogram.txt``: nearest-neighbour scores and the threshold
- ``dedup.json``: the summary (threshold and its rule, counts, seconds, inputs)
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from embedsearch.dedup.grouping import Groups
from embedsearch.dedup.inputs import Catalog
from embedsearch.errors import InputError

SUMMARY = "dedup.json"


def prepare_out(out: Path) -> Path:
    """Check ``--out`` (empty, missing, or an earlier dedup result) and make a staging dir."""
    if out.exists():
        if not out.is_dir():
            raise InputError(f"--out {out} exists and is not a folder")
        if any(out.iterdir()) and not (out / SUMMARY).is_file():
            raise InputError(
                f"--out {out} is a non-empty folder that is not a dedup result: use another --out"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.dedup-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


def publish(staging: Path, out: Path) -> None:
    """Replace ``out`` with the staged result (the old one is removed only after the rename)."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_pairs(
    path: Path, catalog: Catalog, a: np.ndarray, b: np.ndarray, score: np.ndarray, exact: np.ndarray
) -> None:
    """``pairs.parquet``, highest score first."""
    order = np.lexsort((b, a, -score))
    a, b, score, exact = a[order], b[order], score[order], exact[order]
    table = pa.table(
        {
            "id_a": pa.array(catalog.ids[a], pa.int64()),
            "id_b": pa.array(catalog.ids[b], pa.int64()),
            "source_a": catalog.source_of(a),
            "source_b": catalog.source_of(b),
            "score": pa.array(score, pa.float32()),
            "exact": pa.array(exact, pa.bool_()),
            "dir_a": pa.array(catalog.dir_numbers[a], pa.int32()),
            "dir_b": pa.array(catalog.dir_numbers[b], pa.int32()),
        }
    )
    pq.write_table(table, path)


def write_groups(path: Path, catalog: Catalog, groups: Groups) -> None:
    """``groups.parquet``, ordered by group, survivor first."""
    order = np.lexsort((groups.rows, ~groups.keep, groups.group))
    rows = groups.rows[order]
    table = pa.table(
        {
            "group": pa.array(groups.group[order], pa.int64()),
            "id": pa.array(catalog.ids[rows], pa.int64()),
            "source": catalog.source_of(rows),
            "keep": pa.array(groups.keep[order], pa.bool_()),
            "dir": pa.array(catalog.dir_numbers[rows], pa.int32()),
        }
    )
    pq.write_table(table, path)


def write_lists(staging: Path, catalog: Catalog, removed_rows: np.ndarray, main_rows: int) -> int:
    """``keep.txt`` and ``remove.txt`` over the first ``main_rows`` rows; returns the number kept."""
    removed = np.zeros(main_rows, dtype=bool)
    removed[removed_rows[removed_rows < main_rows]] = True
    kept = 0
    with (
        open(staging / "keep.txt", "w") as keep_file,
        open(staging / "remove.txt", "w") as remove_file,
    ):
        start = 0
        for chunk in catalog.sources.chunks:
            stop = min(start + len(chunk), main_rows)
            if stop <= start:
                break
            flags = removed[start:stop]
            for source, gone in zip(
                chunk.slice(0, stop - start).to_pylist(), flags.tolist(), strict=False
            ):
                # One source per line: newlines inside a text would break shell loops.
                line = (source or "").replace("\n", " ") + "\n"
                (remove_file if gone else keep_file).write(line)
                kept += not gone
            start = stop
    return kept


def write_summary(staging: Path, summary: dict[str, Any]) -> None:
    """``dedup.json`` (the staging dir is renamed as a whole, so a plain write is atomic enough)."""
    (staging / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
