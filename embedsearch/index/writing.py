"""Shared steps of building and appending: ``index.json`` contents, adding rows, finishing.

:func:`add_rows` streams embedding dirs once: rows are added to the faiss index under
their keys and written to a new metadata file, and every row (added or already indexed)
updates the exact neighbours of the query samples. :func:`finish_index` tunes, measures,
writes ``index.faiss`` then ``index.json`` last, and publishes the staged dir.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedsearch.index import layout
from embedsearch.index.factory import IndexPlan
from embedsearch.index.metadata import MetadataStore, MetadataWriter
from embedsearch.index.sources import Sample, iter_rows
from embedsearch.index.tune import ExactTopK, measure_latency, tune
from embedsearch.progress import Progress
from embedsearch.store.embedding_dir import EmbeddingDir


@dataclass
class IndexParts:
    """An index being built: the faiss object, its ``index.json`` and the query samples."""

    index: Any
    info: dict[str, Any]
    tuning: Sample
    held_out: Sample
    k: int
    added: int = 0
    truth: list[np.ndarray] = field(default_factory=list)


def sample_keys(sample: Sample) -> np.ndarray:
    """faiss keys of sampled rows (their dir numbers and embedding ids)."""
    return (sample.dirs.astype(np.int64) << np.int64(layout.KEY_BITS)) | sample.ids


def source_entry(d: EmbeddingDir) -> dict[str, Any]:
    """The ``index.json["sources"]`` entry of one embedding dir."""
    return {
        "path": str(Path(d.path).resolve()),
        "fingerprint": d.fingerprint,
        "model": d.model,
        "modality": d.modality,
        "rows": d.live_rows,
        "indexed_rows": 0,
        "next_id": d.next_id,
        "shards": len(d.shards),
        "manifest_updated": d.manifest.get("updated", d.manifest.get("created")),
    }


def new_index_info(
    plan: IndexPlan, dirs: Sequence[EmbeddingDir], budget: int, target: float, k: int
) -> dict[str, Any]:
    """``index.json`` of a new index, before rows are added and parameters tuned."""
    first = dirs[0]
    return {
        "format": layout.FORMAT,
        "format_version": layout.FORMAT_VERSION,
        "kind": plan.kind,
        "factory": plan.factory,
        "metric": "inner_product",
        "nlist": plan.nlist,
        "search_params": {},
        "recall": {"k": k, "target": target, "recall_at_k": None, "met": None, "queries": 0},
        "latency": {},
        "memory_bytes": 0,
        "estimated_bytes": plan.estimated_bytes,
        "max_memory": budget,
        "build_seconds": 0.0,
        "ntotal": 0,
        "dim": first.dim,
        "model": first.model,
        "model_options": first.model_options,
        "fingerprint": first.fingerprint,
        "modality": first.modality,
        "key_bits": layout.KEY_BITS,
        "sources": [source_entry(d) for d in dirs],
        "metadata_files": [],
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "notes": [],
    }


def add_rows(
    parts: IndexParts,
    dirs: Sequence[EmbeddingDir],
    numbers: Sequence[int],
    staged: Path,
    skip: MetadataStore | None,
    progress: Progress,
    add_to: set[int] | None = None,
) -> None:
    """Stream ``dirs``: add rows of dirs in ``add_to`` (all by default) not in ``skip``; update ground truth."""
    truths = [ExactTopK(s.vectors, sample_keys(s), parts.k) for s in (parts.tuning, parts.held_out)]
    writers: dict[int, MetadataWriter] = {}
    next_file = len(parts.info["metadata_files"])
    progress.start("adding", sum(d.live_rows for d in dirs))
    for number, batch, vectors in iter_rows(dirs, None, numbers):
        for other, writer in writers.items():
            if other != number:  # dirs come one after another: a finished dir's rows go to disk now
                writer.flush()
        keys = layout.make_keys(batch.column("id").to_numpy(zero_copy_only=False), number)
        for truth in truths:
            truth.add(vectors, keys)
        new = np.ones(len(keys), bool) if skip is None else ~skip.contains(keys)
        if add_to is not None and number not in add_to:
            new[:] = False
        if new.any():
            if number not in writers:
                writers[number] = MetadataWriter(
                    staged / layout.META_TEMPLATE.format(next_file + len(writers))
                )
            rows = np.flatnonzero(new)
            parts.index.add_with_ids(np.ascontiguousarray(vectors[rows]), keys[rows])
            writers[number].write(keys[rows], number, batch.take(rows))
            parts.added += len(rows)
        progress.advance(batch.num_rows)
    progress.stop()
    for number, writer in writers.items():
        writer.close()
        parts.info["metadata_files"].append(
            {"file": writer.path.name, "dir": number, "rows": writer.rows}
        )
        parts.info["sources"][number]["indexed_rows"] += writer.rows
    parts.truth = [t.keys() for t in truths]


def finish_index(
    parts: IndexParts,
    staged: Path,
    out: Path,
    started: float,
    notes: list[str],
    progress: Progress,
    seconds_key: str = "build_seconds",
) -> Any:
    """Tune, measure, write ``index.faiss`` + ``index.json`` (last) and publish; returns a BuildSummary."""
    import faiss

    from embedsearch.index.build import BuildSummary

    info, k = parts.info, parts.k
    target = info["recall"]["target"]
    progress.start("tuning search parameters", None)
    tuning = (parts.tuning.vectors, sample_keys(parts.tuning), parts.truth[0])
    held_out = (parts.held_out.vectors, sample_keys(parts.held_out), parts.truth[1])
    result = tune(parts.index, tuning, held_out, k, target)
    queries = np.concatenate([parts.tuning.vectors, parts.held_out.vectors])
    latency = measure_latency(parts.index, queries, k)
    progress.stop()
    notes = list(notes)
    if not result.met:
        notes.append(
            f"recall@{k} target {target} not met: best reachable within the budget is {result.recall:.3f}"
        )
    if info["estimated_bytes"] > info["max_memory"]:
        notes.append(
            f"no index kind fits --max-memory {info['max_memory']:,} bytes; built the smallest"
        )
    faiss.write_index(parts.index, str(staged / layout.INDEX_FILE))
    info.update(
        {
            "search_params": result.params,
            "recall": {
                "k": k,
                "target": target,
                "recall_at_k": round(result.recall, 4),
                "met": result.met,
                "queries": len(parts.held_out.vectors),
            },
            "tuning": [
                {"params": t.params, "recall": round(t.recall, 4), "seconds": round(t.seconds, 5)}
                for t in result.trials
            ],
            "latency": latency,
            "memory_bytes": (staged / layout.INDEX_FILE).stat().st_size,
            "ntotal": int(parts.index.ntotal),
            seconds_key: round(time.perf_counter() - started, 3),
            "notes": notes,
        }
    )
    layout.write_info(staged, info)
    layout.publish(staged, out)
    return BuildSummary(
        out,
        info["kind"],
        info["factory"],
        info["ntotal"],
        parts.added,
        result.recall,
        target,
        result.met,
        result.params,
        info["memory_bytes"],
        info[seconds_key],
        notes,
        info,
    )
