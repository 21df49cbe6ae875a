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
    recall = info.get("recall", {})
    latency = info.get("latency", {})
    params = info.get("search_params") or {}
    summary: dict[str, Any] = {
        "type": "index dir",
        "kind": info["kind"],
        "factory": info["factory"],
        "metric": info.get("metric", "inner_product"),
        "search params": ", ".join(f"{k}={v}" for k, v in params.items()) or "(exact)",
        "rows (ntotal)": int(info.get("ntotal", 0)),
        "dim": int(info["dim"]),
        "model": info["model"],
        "fingerprint": info["fingerprint"],
        f"recall@{recall.get('k', 10)}": recall.get("recall_at_k"),
        "recall target": recall.get("target"),
        "target met": {True: "yes", False: "no"}.get(recall.get("met"), "not measured"),
        "latency p50 (ms)": latency.get("p50_ms"),
        "latency p99 (ms)": latency.get("p99_ms"),
        "batch QPS": latency.get("batch_qps"),
        "memory bytes": int(info.get("memory_bytes", 0)),
        "max memory": int(info.get("max_memory", 0)),
        "build seconds": info.get("build_seconds"),
        "sources": len(info.get("sources", [])),
    }
    for number, source in enumerate(info.get("sources", [])):
        summary[f"source {number}"] = f"{source['path']} ({source.get('indexed_rows', 0):,} rows)"
    for note in info.get("notes", []):
        summary.setdefault("notes", note)
    return summary
