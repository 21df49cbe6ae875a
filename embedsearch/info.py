"""``info``: describe a run dir, an embedding dir, an index dir or a dedup result dir as
label -> value rows (for people) or a typed JSON document (for scripts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedsearch.errors import FormatError

if TYPE_CHECKING:
    from embedsearch.store.embedding_dir import EmbeddingDir


DEDUP_SUMMARY = "dedup.json"  # what marks a dedup result dir (``dedup --out``)
METRICS_FILE = "metrics.jsonl"  # a run dir's per-epoch log


def describe(path: str | Path) -> tuple[str, dict[str, Any]]:
    """-> (kind, facts) for a run dir, embedding dir, index dir or dedup dir.

    Example:
        >>> describe("emb/")[0]   # doctest: +SKIP
        'embedding dir'
    """
    path = Path(path)
    kind = _kind_of(path)
    if kind == "index_dir":
        from embedsearch.index import describe_index_dir

        facts = describe_index_dir(path)
    elif kind == "embedding_dir":
        from embedsearch.store.embedding_dir import EmbeddingDir

        facts = describe_embedding_dir(EmbeddingDir.open(path))
    else:
        facts = {"dedup_dir": describe_dedup_dir, "run_dir": describe_run_dir}[kind](path)
    return kind.replace("_", " "), facts


def _dedup_summary(path: Path) -> dict[str, Any]:
    try:
        summary = json.loads((path / DEDUP_SUMMARY).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{path / DEDUP_SUMMARY} is not a readable dedup summary: {e}") from e
    if not isinstance(summary, dict):
        raise FormatError(f"{path / DEDUP_SUMMARY} is not a dedup summary (not a JSON object)")
    return summary


def describe_dedup_dir(path: Path) -> dict[str, Any]:
    """Facts about a dedup result dir: its ``dedup.json`` summary, then the files it holds."""
    summary = _dedup_summary(path)
    facts: dict[str, Any] = {"path": str(path.resolve())}
    for key, value in summary.items():
        if isinstance(value, float) and key != "seconds":
            value = str(value)  # a threshold's every decimal counts (tables round floats)
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value) or "-"
        elif isinstance(value, dict):
            value = json.dumps(value)
        facts[key.replace("_", " ")] = value
    facts["files"] = ", ".join(_file_names(path))
    return facts


def describe_embedding_dir(d: EmbeddingDir) -> dict[str, Any]:
    """Facts about an :class:`~embedsearch.store.EmbeddingDir`."""
    m = d.manifest
    damaged = d.damaged_shards()  # hashes every shard: `info` is where damage is looked for
    return {
        "path": str(d.path.resolve()),
        "model": m.model + (f" {m.model_options}" if m.model_options else ""),
        "fingerprint": m.fingerprint,
        "modality": m.modality,
        "dim": m.dim,
        "rows": m.totals.rows,
        "live rows": m.totals.live_rows,
        "superseded rows": len(m.superseded_ids),
        "deleted rows": len(m.deleted_ids or ()),
        "shards": len(m.shards),
        "damaged shards": ", ".join(f"{name} ({why})" for name, why in damaged) or "none",
        "failures": m.totals.failures,
        "next id": m.next_id,
        "source": m.source,
        "updated": d.updated,
    }


def describe_run_dir(path: Path) -> dict[str, Any]:
    """Facts about a model run dir (its config; the fingerprint needs the weights)."""
    from embedsearch.encoders import load_encoder
    from embedsearch.encoders.rundir import CONFIG_FILE, RunConfig

    config = RunConfig.read(path / CONFIG_FILE)
    encoder = load_encoder(str(path))
    facts = {
        "path": str(path.resolve()),
        "family": config.family,
        "arch": config.arch,
        "image size": config.image_size,
        "dim": encoder.dim,
        "modalities": ", ".join(sorted(encoder.modalities)),
        "embedding": config.embedding,
        "fingerprint": encoder.fingerprint,
    }
    if (path / METRICS_FILE).is_file():
        lines = _metrics_lines(path)
        facts["epochs logged"] = len(lines)
        if lines:
            facts["last metrics"] = lines[-1]
    return facts


def _metrics_lines(path: Path) -> list[str]:
    """The non-blank lines of a run dir's ``metrics.jsonl`` (none when it has no such file)."""
    metrics = path / METRICS_FILE
    lines = metrics.read_text().splitlines() if metrics.is_file() else []
    return [line for line in lines if line.strip()]


def _file_names(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.is_file())


# Version of the ``info --format json`` document; bumped when a key changes meaning or goes.
INFO_JSON_VERSION = 1


def info_document(path: str | Path) -> dict[str, Any]:
    """The machine-readable description ``info --format json`` prints: stable snake_case keys,
    typed values (numbers, booleans, lists, objects, null), keyed by ``kind``.

    ``kind`` is ``run_dir``, ``embedding_dir``, ``index_dir`` or ``dedup_dir``; the keys of each
    are listed in the README ("info --format json"); a dedup dir's are those of its ``dedup.json``
    plus ``files``. Unlike :func:`describe` (labels for people), values are
    never pre-formatted: ``search_params`` is an object, ``recall.met`` a boolean or null.

    Example:
        >>> info_document("emb/")["live_rows"]   # doctest: +SKIP
        1200
    """
    kind = _kind_of(Path(path))
    build = {
        "run_dir": _run_dir_json,
        "embedding_dir": _embedding_dir_json,
        "dedup_dir": _dedup_dir_json,
    }
    body = build.get(kind, _index_dir_json)(Path(path))
    return {
        "info_version": INFO_JSON_VERSION,
        "kind": kind,
        "path": str(Path(path).resolve()),
        **body,
    }


def _kind_of(path: Path) -> str:
    """``index_dir``, ``dedup_dir``, ``embedding_dir`` or ``run_dir``: what ``path`` holds."""
    if not path.exists():
        raise FormatError(f"{path} does not exist")
    if (path / "index.json").is_file():
        return "index_dir"
    if (path / DEDUP_SUMMARY).is_file():
        return "dedup_dir"
    from embedsearch.encoders.locate import is_run_dir
    from embedsearch.store.embedding_dir import EmbeddingDir

    if EmbeddingDir.is_embedding_dir(path):
        return "embedding_dir"
    if is_run_dir(path):
        return "run_dir"
    raise FormatError(f"{path} is not a run dir, embedding dir, index dir or dedup dir")


def _dedup_dir_json(path: Path) -> dict[str, Any]:
    return {**_dedup_summary(path), "files": _file_names(path)}


def _embedding_dir_json(path: Path) -> dict[str, Any]:
    from embedsearch.store.embedding_dir import EmbeddingDir

    d = EmbeddingDir.open(path)
    m = d.manifest
    return {
        "model": m.model,
        "model_options": dict(m.model_options),
        "fingerprint": m.fingerprint,
        "modality": m.modality,
        "dim": m.dim,
        "metric": m.metric,
        "normalized": m.normalized,
        "rows": m.totals.rows,
        "live_rows": m.totals.live_rows,
        "superseded_rows": len(m.superseded_ids),
        "deleted_rows": len(m.deleted_ids or ()),
        "shards": len(m.shards),
        "failures": m.totals.failures,
        "next_id": m.next_id,
        "source": m.source,
        "created": m.created,
        "updated": d.updated,
    }


def _run_dir_json(path: Path) -> dict[str, Any]:
    from embedsearch.encoders import load_encoder
    from embedsearch.encoders.rundir import CONFIG_FILE, OPEN_CLIP_CONFIG_FILE, RunConfig

    config = RunConfig.read(path / CONFIG_FILE)
    encoder = load_encoder(str(path))
    lines = _metrics_lines(path)
    return {
        "family": config.family,
        "arch": config.arch,
        "image_size": config.image_size,
        "dim": encoder.dim,
        "modalities": sorted(encoder.modalities),
        "embedding": config.embedding,
        "fingerprint": encoder.fingerprint,
        "preprocess": encoder.preprocess.to_cfg(),
        "open_clip_loadable": (path / OPEN_CLIP_CONFIG_FILE).is_file(),
        "training": config.training,
        "epochs_logged": len(lines),
        "last_metrics": json.loads(lines[-1]) if lines else None,
    }


def _index_dir_json(path: Path) -> dict[str, Any]:
    from embedsearch.index.layout import read_info

    info = read_info(path)
    return {
        "index_kind": info.kind,
        "factory": info.factory,
        "metric": info.metric,
        "search_params": dict(info.search_params),
        "ntotal": info.ntotal,
        "dim": info.dim,
        "model": info.model,
        "model_options": dict(info.model_options),
        "fingerprint": info.fingerprint,
        "modality": info.modality,
        "recall": {key: getattr(info.recall, key) for key in ("k", "recall_at_k", "target", "met")},
        "latency": {key: info.latency.get(key) for key in ("p50_ms", "p99_ms", "batch_qps")},
        "memory_bytes": info.memory_bytes,
        "max_memory": info.max_memory,
        "build_seconds": info.build_seconds,
        "sources": [{"path": s.path, "indexed_rows": s.indexed_rows} for s in info.sources],
        "notes": list(info.notes),
        "created": info.created,
        "updated": info.updated,
    }
