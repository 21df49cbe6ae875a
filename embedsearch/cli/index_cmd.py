"""``embedsearch index EMB_DIR... --out INDEX_DIR [--kind] [--max-memory] [--target-recall]
[--append]``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from embedsearch.choices import CentreMode, Device
from embedsearch.cli.app import app
from embedsearch.index.plan import Kind

if TYPE_CHECKING:
    from embedsearch.index.finish import BuildSummary


@app.command("index")
def index_command(
    emb_dirs: Annotated[
        list[Path], typer.Argument(help="Embedding dirs made by `embed` (same model).")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Index dir to create (or to add to with --append).")
    ],
    kind: Annotated[
        Kind, typer.Option("--kind", help="Index kind; auto picks one within --max-memory.")
    ] = "auto",
    max_memory: Annotated[
        str | None,
        typer.Option(
            "--max-memory",
            help="Index memory budget, e.g. 500M, 4G [default: half the available RAM].",
        ),
    ] = None,
    target_recall: Annotated[
        float, typer.Option("--target-recall", help="recall@k the search parameters are tuned to.")
    ] = 0.95,
    k: Annotated[int, typer.Option("-k", help="k of the recall target.")] = 10,
    append: Annotated[
        bool,
        typer.Option(
            "--append", help="Add new dirs / new rows to the existing index, without retraining."
        ),
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing index dir.")
    ] = False,
    device: Annotated[
        Device,
        typer.Option("--device", help="cuda needs a faiss build with GPU support."),
    ] = "auto",
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the training and query samples.")
    ] = 0,
    centre: Annotated[
        CentreMode,
        typer.Option(
            "--centre",
            help="Remove the corpus mean inside the index (scores become centred cosines, "
            "spread over [-1, 1]); auto: when the vectors are concentrated (mean pairwise "
            "cosine >= 0.9).",
        ),
    ] = "no",
    output_format: Annotated[
        Literal["table", "json"],
        typer.Option("--format", help="table (on stderr) or json (index.json on stdout)."),
    ] = "table",
) -> None:
    """Build a FAISS index dir tuned to a measured recall, within a memory budget."""
    from embedsearch.cli.render import progress_bar, stderr, stdout
    from embedsearch.errors import InputError
    from embedsearch.index import append_index, build_index

    if append:
        # the index keeps its kind and budget: these options would be silently ignored
        options = {"--kind": kind != "auto", "--max-memory": max_memory is not None}
        options["--centre"] = centre != "no"
        options["--overwrite"] = overwrite
        refused = [name for name, given in options.items() if given]
        if refused:
            raise InputError(f"--append keeps the index as built: drop {', '.join(refused)}")
    with progress_bar() as bar:
        if append:
            summary = append_index(
                emb_dirs,
                out,
                target_recall=target_recall,
                k=k,
                device=device,
                seed=seed,
                progress=bar,
            )
        else:
            summary = build_index(
                emb_dirs,
                out,
                kind=kind,
                max_memory=max_memory,
                target_recall=target_recall,
                k=k,
                overwrite=overwrite,
                device=device,
                seed=seed,
                centre=centre,
                progress=bar,
            )
    if output_format == "json":
        stdout.print_json(json.dumps(summary.info.to_json()))
        return
    stderr.print(_summary_table(summary, k))
    for note in summary.notes:
        stderr.print(f"note: {note}")


def _summary_table(s: BuildSummary, k: int) -> Any:
    from embedsearch.cli.render import summary_table
    from embedsearch.index.budget import format_bytes
    from embedsearch.index.scores import describe_scores

    latency = s.info.latency
    recall = f"{s.recall:.3f} (target {s.target_recall}{'' if s.met else ', NOT met'})"
    return summary_table(
        f"index → {s.out}",
        [
            ("kind", f"{s.kind} ({s.factory})"),
            ("rows", f"{s.ntotal:,} ({s.added:,} added)"),
            (
                "search params",
                ", ".join(f"{n}={v}" for n, v in s.search_params.items()) or "(exact)",
            ),
            (f"recall@{k}", recall),
            (
                "latency p50 / p99",
                f"{latency.get('p50_ms', 0):.3f} / {latency.get('p99_ms', 0):.3f} ms",
            ),
            ("batch QPS", latency.get("batch_qps", 0.0)),
            ("memory", format_bytes(s.memory_bytes)),
            ("seconds", s.build_seconds),
            ("similarity", s.info.similarity or "cosine"),
            ("scores", (describe_scores(s.info.score_percentiles) or "-").removeprefix("scores: ")),
        ],
    )
