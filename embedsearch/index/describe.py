"""``describe_index_dir``: the flat label -> value summary ``embedsearch info`` prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from embedsearch.index.layout import read_info


def describe_index_dir(path: str | Path) -> dict[str, Any]:
    """Flat summary of an index dir (reads only ``index.json``).

    Example:
        >>> describe_index_dir("indexes/photos")["factory"]   # doctest: +SKIP
        'IVF1024,SQ8'
    """
    info = read_info(path)
    recall, latency = info.recall, info.latency
    summary: dict[str, Any] = {
        "type": "index dir",
        "kind": info.kind,
        "factory": info.factory,
        "metric": info.metric,
        "search params": ", ".join(f"{k}={v}" for k, v in info.search_params.items()) or "(exact)",
        "rows (ntotal)": info.ntotal,
        # deleted rows an HNSW/refined index cannot remove: skipped by every search
        **({"excluded rows": info.excluded_rows} if info.excluded_rows else {}),
        "dim": info.dim,
        "model": info.model,
        "fingerprint": info.fingerprint,
        f"recall@{recall.k}": recall.recall_at_k,
        "recall target": recall.target,
        "target met": {True: "yes", False: "no", None: "not measured"}[recall.met],
        "latency p50 (ms)": latency.get("p50_ms"),
        "latency p99 (ms)": latency.get("p99_ms"),
        "batch QPS": latency.get("batch_qps"),
        "memory bytes": info.memory_bytes,
        "storage": info.storage or "memory",
        "max memory": info.max_memory,
        "build seconds": info.build_seconds,
        "sources": len(info.sources),
    }
    for number, source in enumerate(info.sources):
        summary[f"source {number}"] = f"{source.path} ({source.indexed_rows:,} rows)"
    if info.notes:
        summary["notes"] = info.notes[0]
    return summary
