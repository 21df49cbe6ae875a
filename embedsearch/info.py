"""``info``: describe a run dir, an embedding dir or an index dir as label -> value rows."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedsearch.errors import FormatError

if TYPE_CHECKING:
    from embedsearch.store.embedding_dir import EmbeddingDir


def describe(path: str | Path) -> tuple[str, dict[str, Any]]:
    """-> (kind, facts) for a run dir, embedding dir or index dir.

    Example:
        >>> describe("emb/")[0]   # doctest: +SKIP
        'embedding dir'
    """
    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path} does not exist")
    if (path / "index.json").is_file():
        from embedsearch.index import describe_index_dir

        return "index dir", describe_index_dir(path)
    from embedsearch.encoders.rundir import is_run_dir
    from embedsearch.store.embedding_dir import EmbeddingDir

    if EmbeddingDir.is_embedding_dir(path):
        return "embedding dir", describe_embedding_dir(EmbeddingDir.open(path))
    if is_run_dir(path):
        return "run dir", describe_run_dir(path)
    raise FormatError(f"{path} is not a run dir, embedding dir or index dir")


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
    metrics = path / "metrics.jsonl"
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
    if metrics.is_file():
        lines = [line for line in metrics.read_text().splitlines() if line.strip()]
        facts["epochs logged"] = len(lines)
        if lines:
            facts["last metrics"] = lines[-1]
    return facts
