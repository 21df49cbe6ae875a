"""``embedsearch serve INDEX_DIR... [--dedup DIR] [--host H] [--port P] [--token T|--no-auth]``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from embedsearch.cli.app import app


@app.command("serve")
def serve_command(
    index_dirs: Annotated[
        list[Path], typer.Argument(help="Index dirs made by `index` (served by folder name).")
    ],
    dedup: Annotated[
        Path | None,
        typer.Option("--dedup", help="A dedup result dir (`dedup --out`) to browse as groups."),
    ] = None,
    host: Annotated[
        str,
        typer.Option(
            "--host", help="Address to bind; anything but loopback needs --token or --no-auth."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="EMBEDSEARCH_TOKEN",
            help="Require 'Authorization: Bearer T' on every API call (or env EMBEDSEARCH_TOKEN).",
        ),
    ] = None,
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth", help="Serve a non-loopback address without a token (prints a warning)."
        ),
    ] = False,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--cors-origin",
            help="Allow this browser origin to call the API (repeatable; none by default).",
        ),
    ] = None,
    image_root: Annotated[
        list[Path] | None,
        typer.Option(
            "--image-root",
            help="Extra folder whose indexed images may be served (repeatable; "
            "the embedded folders are allowed already).",
        ),
    ] = None,
    max_k: Annotated[int, typer.Option("--max-k", help="Most hits one query may ask for.")] = 500,
    max_upload_mb: Annotated[
        float, typer.Option("--max-upload-mb", help="Largest query image upload, in MB.")
    ] = 20.0,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds a request may wait and run before 503.")
    ] = 30.0,
    max_batch: Annotated[
        int,
        typer.Option(
            "--max-batch", help="Most queries answered by one model forward / faiss search."
        ),
    ] = 64,
    batch_wait_ms: Annotated[
        float,
        typer.Option("--batch-wait-ms", help="Longest a batch waits for requests still arriving."),
    ] = 2.0,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Serve indexes over HTTP: a JSON API (docs at /docs) and a search page."""
    import os

    # Before torch/faiss load: idle OpenMP threads sleep instead of spinning, so they leave the
    # cores to the event loop; on a busy 2-core VM spinning gave 1-client p99 of 351 ms (28 ms
    # passive). OMP_WAIT_POLICY=active in the environment keeps the old behaviour.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from embedsearch.errors import InputError
    from embedsearch.serve import BatchPolicy, Limits, ServeConfig, run_server

    if not 1 <= port <= 65535:
        raise InputError(f"--port must be in 1..65535, got {port}")
    if max_k < 1 or max_upload_mb <= 0 or timeout <= 0 or max_batch < 1 or batch_wait_ms < 0:
        raise InputError("--max-k, --max-upload-mb, --timeout and --max-batch must be positive")
    upload = int(max_upload_mb * (1 << 20))
    config = ServeConfig(
        indexes=tuple(index_dirs),
        dedup=dedup,
        host=host,
        port=port,
        token=token,
        no_auth=no_auth,
        cors_origins=tuple(cors_origin or ()),
        image_roots=tuple(p.expanduser() for p in image_root or ()),
        device=device,
        warm_models=True,
        limits=Limits(
            max_k=max_k,
            max_upload_bytes=upload,
            max_body_bytes=2 * upload + (1 << 20),
            request_timeout_s=timeout,
        ),
        batching=BatchPolicy(max_batch=max_batch, max_wait_ms=batch_wait_ms),
    )
    # The server's own log lines (reloads, refused requests) on stderr; only embedsearch's
    # loggers, so other libraries' start-up chatter (faiss's loader) stays quiet.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger("embedsearch").addHandler(handler)
    logging.getLogger("embedsearch").setLevel(logging.INFO)
    run_server(config)
