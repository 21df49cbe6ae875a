"""Writing a dedup result dir: pairs, groups, keep/remove lists, histogram, summary.

Everything is assembled in a staging dir beside ``--out`` and published by a rename at the
end (:mod:`embedsearch.atomic`), so an interrupted run never leaves a half-written result.

- ``pairs.parquet``: ``id_a, id_b, source_a, source_b, score, exact, dir_a, dir_b``
- ``groups.parquet``: ``group, id, source, keep, dir``
- ``keep.txt`` / ``remove.txt``: one source per line (rows of the main input only)
- ``histogram.png`` / ``histogram.txt``: nearest-neighbour scores and the threshold
- ``contact.png``: the largest groups and the pairs nearest the threshold as thumbnails, kept
  image first (image corpora; :mod:`~embedsearch.dedup.contact_sheet`)
- ``dedup.json``: the summary (threshold and its rule, counts, seconds, inputs)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from embedsearch.dedup.calibration import Calibration
from embedsearch.dedup.contact_sheet import write_contact_sheet
from embedsearch.dedup.grouping import Duplicates, Groups
from embedsearch.dedup.inputs import Catalog, DedupInputs
from embedsearch.dedup.options import DedupOptions
from embedsearch.dedup.report import histogram_text, write_histogram_png
from embedsearch.errors import InputError

SUMMARY = "dedup.json"


@dataclass
class DedupResult:
    """What a dedup run found; the files are in ``out`` (the summary in ``dedup.json``)."""

    out: Path
    method: str
    threshold: float
    threshold_rule: str
    rows: int
    pairs: int
    exact_pairs: int
    groups: int
    to_remove: int
    kept: int
    seconds: float
    search: str = ""
    space: str = "raw cosine"
    whitening: str = ""
    local_scaling: str = "off"  # whether scores are locally scaled, and why
    against: Path | None = None
    threshold_words: str = ""  # the threshold and why, in plain words (Calibration.explained)
    advice: list[str] = field(default_factory=list)  # what to do when few self-copies pass
    phash_pairs: int = 0  # pairs only the perceptual-hash stage found


def check_out(out: Path) -> None:
    """Refuse an ``--out`` that is a file or a non-empty folder other than a dedup result."""
    if out.exists():
        if not out.is_dir():
            raise InputError(f"--out {out} exists and is not a folder")
        if any(out.iterdir()) and not (out / SUMMARY).is_file():
            raise InputError(
                f"--out {out} is a non-empty folder that is not a dedup result: use another --out"
            )


def write_result(
    staged: Path,
    out: Path,
    inputs: DedupInputs,
    options: DedupOptions,
    calibration: Calibration,
    found: Duplicates,
    started: float,
) -> DedupResult:
    """Every file of the result dir into ``staged``; the result as :func:`find_duplicates`
    returns it (``out`` is where ``staged`` will be published)."""
    catalog, groups = inputs.catalog, found.groups
    write_pairs(staged / "pairs.parquet", catalog, found.a, found.b, found.score, found.exact)
    write_groups(staged / "groups.parquet", catalog, groups)
    removed = np.unique(found.a if inputs.against else groups.rows[~groups.keep])
    kept = write_lists(staged, catalog, removed, inputs.main_rows)
    threshold, rule, space = calibration.threshold, calibration.rule, calibration.space
    (staged / "histogram.txt").write_text(histogram_text(found.best, threshold, rule, space))
    write_histogram_png(found.best, threshold, rule, staged / "histogram.png", space)
    sheet = write_contact_sheet(staged / "contact.png", catalog, found, threshold)
    result = DedupResult(
        out=out,
        method=options.method,
        threshold=threshold,
        threshold_rule=rule,
        rows=len(catalog),
        pairs=len(found.a),
        exact_pairs=int(found.exact.sum()),
        groups=groups.count,
        to_remove=len(removed),
        kept=kept,
        seconds=time.perf_counter() - started,
        search=found.search,
        phash_pairs=found.phash_pairs,
        space=space,
        whitening=calibration.decision,
        local_scaling=calibration.scaling_decision,
        threshold_words=calibration.explained(),
        advice=list(calibration.advice),
    )
    summary = {
        "method": result.method,
        "keep": options.keep,
        "threshold": result.threshold,
        "threshold_rule": result.threshold_rule,
        "threshold_words": result.threshold_words,
        "advice": result.advice,
        "search": result.search,
        "scores": result.space,
        "whitening": result.whitening,
        "local_scaling": result.local_scaling,
        "rows": result.rows,
        "main_rows": inputs.main_rows,
        "pairs": result.pairs,
        "exact_pairs": result.exact_pairs,
        "phash_pairs": result.phash_pairs,
        "phash_max_distance": options.phash,
        "groups": result.groups,
        "to_remove": result.to_remove,
        "kept": kept,
        "seconds": round(result.seconds, 3),
        "contact_sheet": sheet,
        "inputs": [str(d.path) for d in inputs.main_dirs],
        "against": [str(d.path) for d in inputs.other_dirs],
        "model": catalog.dirs[0].model,
        "fingerprint": catalog.dirs[0].fingerprint,
    }
    # The staged dir is published as a whole, so a plain write is atomic enough.
    (staged / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return result


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
    """``keep.txt`` and ``remove.txt`` over the first ``main_rows`` rows; returns how many kept."""
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
