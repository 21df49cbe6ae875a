"""Per-epoch training metrics: ``metrics.jsonl`` (one JSON object per epoch) and ``loss.png``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from embedsearch.atomic import replacing

METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "loss.png"


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    """Append one epoch's record to ``metrics.jsonl`` (flushed, so a crash keeps earlier epochs)."""
    with open(run_dir / METRICS_FILE, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All epoch records of a run dir, in order (empty when none yet).

    Example:
        >>> [r["loss"] for r in read_metrics("runs/a")]   # doctest: +SKIP
        [5.31, 4.87]
    """
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_metrics(run_dir: Path, last_epoch: int) -> None:
    """Drop records after ``last_epoch`` (written after the checkpoint a resume starts from)."""
    records = [r for r in read_metrics(run_dir) if r["epoch"] <= last_epoch]
    (run_dir / METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))


def plot_metrics(run_dir: Path) -> Path:
    """Draw ``loss.png``: training loss per epoch, plus every eval metric on a second axis."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    records = read_metrics(run_dir)
    epochs = [r["epoch"] for r in records]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [r["loss"] for r in records], marker="o", color="tab:blue", label="loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    eval_keys = sorted({k for r in records for k in r if k.startswith("eval_")})
    if eval_keys:
        twin = ax.twinx()
        for key in eval_keys:
            points = [(r["epoch"], r[key]) for r in records if key in r]
            twin.plot(*zip(*points, strict=False), marker="s", linestyle="--", label=key)
        twin.set_ylabel("eval")
        twin.legend(loc="upper right")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = run_dir / PLOT_FILE
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path
