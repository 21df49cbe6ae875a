"""``embedsearch index EMB_DIR... --out INDEX_DIR [--kind] [--max-memory] [--target-recall] [--append]``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from embedsearch.cli.app import app


@app.command("index")
def index_command(
    emb_dirs: Annotated[
        list[Path], typer.Argument(help="Embedding dirs made by `embed` (same model).")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Index dir to create (or to add to with --append).")
    ],
    kind: Annotated[str, typer.Option("--kind", help="auto, flat, hnsw, ivf or ivfpq.")] = "auto",
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
        str,
        typer.Option("--device", help="auto, cpu or cuda (needs a faiss build with GPU support)."),
    ] = "auto",
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the training and query samples.")
    ] = 0,
    output_format: Annotated[
        str, typer.Option("--format", help="table (on stderr) or json (index.json on stdout).")
    ] = "table",
) -> None:
    """Build a FAISS index dir tuned to a measured recall, within a memory budget."""
    from embedsearch.cli.render import progress_bar, stderr, stdout, summary_table
    from embedsearch.errors import InputError
    from embedsearch.index import build_index
    from embedsearch.index.budget import format_bytes

    if output_format not in ("table", "json"):
        raise InputError(f"unknown --format {output_format!r}: use table or json")
    with progress_bar() as bar:
        s = build_index(
            emb_dirs,
            out,
            kind=kind,
            max_memory=max_memory,
            target_recall=target_recall,
            k=k,
            append=append,
            overwrite=overwrite,
            device=device,
            seed=seed,
            progress=bar,
        )
    if output_format == "json":
        stdout.print_json(json.dumps(s.info))
        return
    latency = s.info.get("latency", {})
    stderr.print(
        summary_table(
            f"index → {s.out}",
            [
                ("kind", f"{s.kind} ({s.factory})"),
                ("rows", f"{s.ntotal:,} ({s.added:,} added)"),
                (
                    "search params",
                    ", ".join(f"{n}={v}" for n, v in s.search_params.items()) or "(exact)",
                ),
                (
                    f"recall@{k}",
                    f"{s.recall:.3f} (target {s.target_recall}{'' if s.met else ', NOT met'})",
                ),
                (
                    "latency p50 / p99",
                    f"{latency.get('p50_ms', 0):.3f} / {latency.get('p99_ms', 0):.3f} ms",
                ),
                ("batch QPS", latency.get("batch_qps", 0.0)),
                ("memory", format_bytes(s.memory_bytes)),
                ("seconds", s.build_seconds),
            ],
        )
    )
    for note in s.notes:
        stderr.print(f"note: {note}")
