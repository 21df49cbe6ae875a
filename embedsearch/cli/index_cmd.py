"""``embedsearch index EMB_DIR... --out INDEX_DIR [--kind] [--max-memory] [--target-recall]
[--append] [--train-only | --num-shards N [--shard-index I] | --merge]``."""

from __future__ import annotations

import ctypes
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from embedsearch.choices import CentreMode, Device
from embedsearch.cli.app import app
from embedsearch.index.plan import Kind

if TYPE_CHECKING:
    from embedsearch.index.finish import BuildSummary
    from embedsearch.index.shards import ShardRecord


@app.command("index")
def index_command(
    emb_dirs: Annotated[
        list[Path], typer.Argument(help="Embedding dirs made by `embed` (same model).")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Index dir to create (or to add to with --append).")
    ],
    kind: Annotated[
        Kind, typer.Option(help="Index kind; auto picks one within --max-memory.")
    ] = "auto",
    max_memory: Annotated[
        str | None,
        typer.Option(
            help="Index memory budget, e.g. 500M, 4G [default: half the available RAM].",
        ),
    ] = None,
    target_recall: Annotated[
        float, typer.Option(help="recall@k the search parameters are tuned to.")
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
        typer.Option(help="cuda needs a faiss build with GPU support."),
    ] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the training and query samples.")] = 0,
    centre: Annotated[
        CentreMode,
        typer.Option(
            help="Remove the corpus mean inside the index (scores become centred cosines, "
            "spread over [-1, 1]); auto: when the vectors are concentrated (mean pairwise "
            "cosine >= 0.9).",
        ),
    ] = "no",
    output_format: Annotated[
        Literal["table", "json"],
        typer.Option("--format", help="table (on stderr) or json (index.json on stdout)."),
    ] = "table",
    train_only: Annotated[
        bool,
        typer.Option(
            "--train-only",
            help="Step 1 of a build by many workers: train on a sample and write OUT.shards/.",
        ),
    ] = False,
    num_shards: Annotated[
        int | None,
        typer.Option(
            help="Build in N shards: with --shard-index, add that worker's slice (step 2); "
            "alone, train, add every shard in turn and merge (memory bounded by a block). "
            "Under torchrun each rank adds one shard.",
        ),
    ] = None,
    shard_index: Annotated[
        int | None,
        typer.Option(help="Which shard this worker adds (0-based)."),
    ] = None,
    merge: Annotated[
        bool,
        typer.Option(
            "--merge",
            help="Step 3: merge the finished shards into OUT (on disk when larger than "
            "--max-memory), tune and publish.",
        ),
    ] = False,
) -> None:
    """Build a FAISS index dir tuned to a measured recall, within a memory budget."""
    from embedsearch.cli.render import progress_bar, stderr, stdout
    from embedsearch.errors import InputError
    from embedsearch.index import append_index, build_index
    from embedsearch.index.parallel import torchrun_rank

    steps = {"--train-only": train_only, "--shard-index": shard_index is not None}
    steps["--merge"] = merge
    if append:
        steps["--num-shards"] = num_shards is not None
    chosen = [name for name, given in steps.items() if given]
    if len(chosen) > 1 or (append and chosen):
        raise InputError(f"choose one of {', '.join(chosen + ['--append'] * append)}")
    if shard_index is not None and num_shards is None:
        raise InputError("--shard-index needs --num-shards")
    build_options: dict[str, Any] = {"kind": kind, "max_memory": max_memory, "k": k}
    build_options |= {"target_recall": target_recall, "device": device, "seed": seed}
    build_options["centre"] = centre
    if not append and (chosen or num_shards is not None or torchrun_rank() is not None):
        steps = {"train_only": train_only, "merge": merge}
        result = _sharded(emb_dirs, out, build_options, overwrite, steps, num_shards, shard_index)
        if result is None:
            return
        summary = result
    elif append:
        # the index keeps its kind and budget: these options would be silently ignored
        options = {"--kind": kind != "auto", "--max-memory": max_memory is not None}
        options["--centre"] = centre != "no"
        options["--overwrite"] = overwrite
        refused = [name for name, given in options.items() if given]
        if refused:
            raise InputError(f"--append keeps the index as built: drop {', '.join(refused)}")
        with progress_bar() as bar:
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
        with progress_bar() as bar:
            summary = build_index(emb_dirs, out, overwrite=overwrite, progress=bar, **build_options)
    if output_format == "json":
        stdout.print_json(json.dumps(summary.info.to_json()))
        return
    stderr.print(_summary_table(summary, k))
    for note in summary.notes:
        stderr.print(f"note: {note}")


def _sharded(
    emb_dirs: list[Path],
    out: Path,
    options: dict[str, Any],
    overwrite: bool,
    steps: dict[str, bool],
    num_shards: int | None,
    shard_index: int | None,
) -> BuildSummary | None:
    """A build by many workers, or one of its steps; None when there is no index to report."""
    from embedsearch.cli.render import progress_bar, stderr
    from embedsearch.errors import InputError
    from embedsearch.index.merge import merge_shards
    from embedsearch.index.parallel import build_in_shards, torchrun_rank
    from embedsearch.index.shards import ShardRecord, add_shard, check_sources, train_shards

    with progress_bar() as bar:
        if steps["train_only"]:
            train_shards(emb_dirs, out, overwrite=overwrite, progress=bar, **options)
            stderr.print(
                "trained: now add the shards (--num-shards N --shard-index I), then --merge"
            )
            return None
        if shard_index is not None and num_shards is not None:
            check_sources(out, emb_dirs)
            _report_shard(
                add_shard(out, shard_index=shard_index, num_shards=num_shards, progress=bar)
            )
            return None
        if steps["merge"]:
            check_sources(out, emb_dirs)
            with _native_stdout_to_stderr():
                return merge_shards(out, overwrite=overwrite, progress=bar)
        launch = torchrun_rank()
        if launch is not None and num_shards not in (None, launch[1]):
            raise InputError(
                f"under torchrun each of the {launch[1]} ranks adds one shard: drop --num-shards"
            )
        rank, shards = launch if launch is not None else (None, num_shards)
        with _native_stdout_to_stderr():
            result = build_in_shards(
                emb_dirs,
                out,
                num_shards=shards,
                rank=rank,
                overwrite=overwrite,
                progress=bar,
                **options,
            )
    if isinstance(result, ShardRecord):
        _report_shard(result)
        return None
    return result


def _report_shard(record: ShardRecord) -> None:
    from embedsearch.cli.render import stderr

    stderr.print(
        f"shard {record.shard_index} of {record.num_shards}: {record.rows:,} rows in "
        f"{len(record.blocks)} blocks, {record.seconds:.1f} s"
    )


@contextmanager
def _native_stdout_to_stderr() -> Iterator[None]:
    """faiss's C++ code prints progress lines (an on-disk merge's "resizing ...") on the process's
    stdout, where ``--format json`` writes its document: send them to stderr meanwhile."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        ctypes.CDLL(None).fflush(None)  # what C code buffered goes to stderr, not after
        os.dup2(saved, 1)
        os.close(saved)


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
