"""Load test of ``embedsearch serve`` on loopback: 1, 8, 32 concurrent clients of mixed
text / image / id queries against a 100k-row tiny-clip index; micro-batching and reload under load.

The index holds generated vectors (clusters on a low-dimensional subspace, L2-normalised, dim 128)
written as an embedding dir stamped with the tiny-clip model and fingerprint, so text and image
queries are embedded by the index's own model like real ones. The server is the real CLI command
(``python -m embedsearch serve``) in its own process; the clients are one asyncio process speaking
plain HTTP/1.1 keep-alive (pre-encoded requests, so the client costs little of the shared CPU).

Every level is bounded by a request count and a time limit and stops by itself. Levels run in
``--repeats`` rounds, alternating, and the median of each figure is reported (the 2-core VM is
shared). Then:

- ``in-process``: the same queries through ``Searcher`` batch calls of ``--batch`` queries
  (``search_texts`` / ``search_images`` / ``search_ids`` on each batch's queries of that kind);
- ``reload``: the 32-client level again while the index dir is republished ``--reloads`` times
  (``build_index --overwrite``: a new dir renamed onto the path); every request must succeed and
  the server must report the reloads.

    flock /tmp/embedsearch-bench.lock python benchmarks/serve_load.py --rows 100000

Goals (issue #14): zero errors; QPS at 32 clients >= 3x one client, >= 0.8x in-process batches.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORDS = (
    "red blue green yellow purple orange small big tiny large circle square triangle star cross "
    "in the top bottom left right middle corner on a dark light background"
).split()


def build_corpus(work: Path, rows: int, kind: str = "flat", dim: int = 128) -> Path:
    """The 100k-row index (reused when ``work`` already holds one of that size)."""
    from embedsearch.encoders import load_encoder
    from embedsearch.index import build_index
    from embedsearch.store.embedding_dir import EmbeddingDir
    from embedsearch.store.writer import ShardWriter

    index = work / f"index-{kind}"
    marker = work / f"rows-{rows}-{kind}"
    if marker.exists() and index.exists():
        return index
    if (work / "emb").exists() and (work / f"rows-{rows}").exists():
        build_index([work / "emb"], index, kind=kind, overwrite=True)
        marker.touch()
        return index
    fingerprint = load_encoder("tiny-clip").fingerprint
    rng = np.random.default_rng(0)
    basis = rng.standard_normal((16, dim)).astype(np.float32)
    centres = rng.standard_normal((200, 16)).astype(np.float32)
    emb = work / "emb"
    d = EmbeddingDir.create_or_open(
        emb,
        model="tiny-clip",
        model_options={},
        fingerprint=fingerprint,
        modality="image",
        dim=dim,
        source="synthetic",
    )
    writer = ShardWriter(d, reserve_next_id=rows)
    for start in range(0, rows, 20_000):
        n = min(20_000, rows - start)
        z = centres[rng.integers(0, len(centres), n)] + 0.5 * rng.standard_normal((n, 16)).astype(
            np.float32
        )
        x = z @ basis + 0.3 * rng.standard_normal((n, dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        ids = np.arange(start, start + n, dtype=np.int64)
        writer.add(
            ids,
            [f"synthetic/{i:06d}.png" for i in ids],
            [f"h{i}" for i in ids],
            x,
            {"label": [int(i % 10) for i in ids]},
        )
    writer.close()
    build_index([emb], index, kind=kind, overwrite=True)
    (work / f"rows-{rows}").touch()
    marker.touch()
    return index


def make_queries(n: int, rows: int, seed: int = 0) -> list[tuple[str, object]]:
    """``n`` mixed queries: a third each text, image (PNG bytes), id."""
    from PIL import Image

    rng = random.Random(seed)
    images = []
    for _ in range(16):
        buffer = io.BytesIO()
        colour = tuple(rng.randrange(256) for _ in range(3))
        Image.new("RGB", (64, 64), colour).save(buffer, "PNG")
        images.append(buffer.getvalue())
    queries: list[tuple[str, object]] = []
    for i in range(n):
        kind = ("text", "image", "id")[i % 3]
        if kind == "text":
            queries.append((kind, " ".join(rng.choice(WORDS) for _ in range(6))))
        elif kind == "image":
            queries.append((kind, images[i % len(images)]))
        else:
            queries.append((kind, rng.randrange(rows)))
    return queries


def encode_request(name: str, kind: str, value: object, k: int) -> bytes:
    """One pre-encoded HTTP/1.1 keep-alive request."""
    from urllib.parse import quote

    base = f"/api/indexes/{name}/search"  # served under its folder name
    head = "Host: 127.0.0.1\r\nConnection: keep-alive\r\n"
    if kind == "text":
        return f"GET {base}?text={quote(str(value))}&k={k} HTTP/1.1\r\n{head}\r\n".encode()
    if kind == "id":
        return f"GET {base}?id={value}&k={k} HTTP/1.1\r\n{head}\r\n".encode()
    boundary = "bench7MA4YWxkTrZu0gW"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="q.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + value
        + f"\r\n--{boundary}--\r\n".encode()
    )  # type: ignore[operator]
    return (
        f"POST {base}/image?k={k} HTTP/1.1\r\n{head}"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _client(
    port: int,
    requests: list[bytes],
    next_index,
    stop_at: float,
    latencies: list[float],
    errors: list[str],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            i = next_index()
            if i is None:
                return
            start = time.perf_counter()
            writer.write(requests[i])
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if b" 200 " not in status_line:
                errors.append(f"{status_line.decode().strip()} {body[:200]!r}")
    except (OSError, asyncio.IncompleteReadError) as e:
        errors.append(f"connection: {e}")
    finally:
        writer.close()


def run_level(port: int, requests: list[bytes], clients: int, limit_s: float) -> dict:
    """``clients`` connections share ``requests`` (each sent once) until done or ``limit_s``."""
    counter = iter(range(len(requests)))
    latencies: list[float] = []
    errors: list[str] = []

    async def main() -> float:
        stop_at = time.perf_counter() + limit_s
        start = time.perf_counter()
        await asyncio.gather(
            *(
                _client(port, requests, lambda: next(counter, None), stop_at, latencies, errors)
                for _ in range(clients)
            )
        )
        return time.perf_counter() - start

    seconds = asyncio.run(main())
    ms = sorted(x * 1000 for x in latencies)
    return {
        "clients": clients,
        "requests": len(ms),
        "errors": len(errors),
        "error_samples": errors[:3],
        "seconds": seconds,
        "qps": len(ms) / seconds,
        "p50_ms": ms[len(ms) // 2] if ms else float("nan"),
        "p99_ms": ms[min(len(ms) - 1, int(len(ms) * 0.99))] if ms else float("nan"),
    }


def in_process(index: Path, queries: list[tuple[str, object]], batch: int) -> float:
    """QPS of the same queries through Searcher batch calls of ``batch`` queries."""
    from embedsearch.data.decode import decode_image
    from embedsearch.index import Searcher

    searcher = Searcher.open(index)
    searcher.search_text("warm up", k=10)
    start = time.perf_counter()
    for first in range(0, len(queries), batch):
        chunk = queries[first : first + batch]
        texts = [v for kind, v in chunk if kind == "text"]
        images = [decode_image(v) for kind, v in chunk if kind == "image"]  # type: ignore[arg-type]
        ids = [v for kind, v in chunk if kind == "id"]
        if texts:
            searcher.search_texts(texts, k=10)
        if images:
            searcher.search_images(images, k=10)
        if ids:
            searcher.search_ids(ids, k=10)
    return len(queries) / (time.perf_counter() - start)


def in_process_engine(index: Path, queries: list[tuple[str, object]], batch: int) -> float:
    """QPS of the server's own batch code (``execute.process``) on batches of ``batch``, no HTTP:
    the server's QPS over this is its HTTP overhead alone."""
    from embedsearch.serve.execute import Query, process
    from embedsearch.serve.registry import open_generation

    gen = open_generation("index", index, warm_encoder=True)
    items = [Query(gen, kind, value, 10) for kind, value in queries]  # type: ignore[arg-type]
    process(items[:batch])  # warm: the id reader's row groups, as a running server has them
    start = time.perf_counter()
    for first in range(0, len(items), batch):
        process(items[first : first + batch])
    return len(items) / (time.perf_counter() - start)


def start_server(index: Path, port: int, extra: list[str]) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    log = index.parent / "server.log"  # a file, not a pipe: a full pipe would stall the server
    process = subprocess.Popen(
        [sys.executable, "-m", "embedsearch", "serve", str(index), "--port", str(port), *extra],
        env=env,
        stderr=log.open("w"),
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError as e:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}") from e
            time.sleep(0.2)


def health(port: int) -> dict:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=10) as r:
        return json.load(r)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def republish(index: Path, kind: str, times: int, every_s: float) -> None:
    """Rebuild the index dir ``times`` times (a new dir renamed onto the path each), in a child."""
    code = (
        "import sys; from embedsearch.index import build_index; "
        "build_index([sys.argv[1]], sys.argv[2], kind=sys.argv[3], overwrite=True)"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    for _ in range(times):
        time.sleep(every_s)
        subprocess.run(
            [sys.executable, "-c", code, str(index.parent / "emb"), str(index), kind],
            env=env,
            check=True,
            capture_output=True,
        )


def median_rows(runs: list[dict]) -> dict:
    return {
        "clients": runs[0]["clients"],
        "rounds": len(runs),
        "requests": sum(r["requests"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "qps": statistics.median(r["qps"] for r in runs),
        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
        "qps_each": [round(r["qps"], 1) for r in runs],
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/embedsearch-serve-bench"))
    parser.add_argument("--kind", default="flat", help="index kind (flat: what auto picks at 100k)")
    parser.add_argument("--levels", default="1,8,32")
    parser.add_argument("--requests", type=int, default=960, help="requests per level (8+ clients)")
    parser.add_argument("--single-requests", type=int, default=300, help="requests at 1 client")
    parser.add_argument("--limit-s", type=float, default=60.0, help="time limit of one level")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32, help="in-process Searcher batch size")
    parser.add_argument("--reloads", type=int, default=3)
    parser.add_argument(
        "--server-args", default="", help="extra `serve` options, e.g. '--max-batch 32'"
    )
    parser.add_argument("--json", type=Path, default=None)
    return parser.parse_args()


def measure_levels(
    port: int, requests: list[bytes], levels: list[int], args
) -> dict[int, list[dict]]:
    """Every level ``args.repeats`` times, alternating the order (drift hits all levels alike)."""
    runs: dict[int, list[dict]] = {c: [] for c in levels}
    for round_number in range(args.repeats):
        for clients in levels if round_number % 2 == 0 else levels[::-1]:
            n = args.single_requests if clients == 1 else args.requests
            result = run_level(port, requests[:n], clients, args.limit_s)
            runs[clients].append(result)
            print(
                f"round {round_number + 1} clients {clients}: {result['qps']:.1f} q/s p50 "
                f"{result['p50_ms']:.1f} ms p99 {result['p99_ms']:.1f} ms "
                f"errors {result['errors']}",
                flush=True,
            )
    return runs


def measure_reload(
    port: int, index: Path, requests: list[bytes], clients: int, args
) -> tuple[int, list[dict]]:
    """Levels at ``clients`` back to back while the index is republished ``args.reloads`` times."""
    before = health(port)["reloads"]
    rebuild = threading.Thread(target=republish, args=(index, args.kind, args.reloads, 2.0))
    rebuild.start()
    runs = []
    while rebuild.is_alive():
        runs.append(run_level(port, requests, clients, args.limit_s))
    rebuild.join()
    deadline = time.monotonic() + 15
    while health(port)["reloads"] - before < args.reloads and time.monotonic() < deadline:
        time.sleep(0.2)
    return health(port)["reloads"] - before, runs


def report(args, levels: list[int], runs: dict, measured: dict) -> int:
    """Print the table and ratios (and write ``--json``); the number of failed requests."""
    from common import machine, print_table

    table = [median_rows(runs[c]) for c in levels]
    print(
        f"\n{machine()}; {args.rows:,} rows, {args.kind}; load average before "
        f"{measured['load_before']}, after {measured['load_after']}"
    )
    print_table(
        [
            "clients",
            "rounds",
            "requests",
            "errors",
            "QPS (median)",
            "p50 ms",
            "p99 ms",
            "QPS each round",
        ],
        [
            [
                r["clients"],
                r["rounds"],
                r["requests"],
                r["errors"],
                r["qps"],
                r["p50_ms"],
                r["p99_ms"],
                " ".join(map(str, r["qps_each"])),
            ]
            for r in table
        ],
    )
    one, top, most = table[0]["qps"], table[-1]["qps"], max(levels)
    searcher, engine = (statistics.median(measured[k]) for k in ("in_process_qps", "engine_qps"))
    reload_runs = measured.pop("reload_runs")
    measured["reload_requests"] = sum(r["requests"] for r in reload_runs)
    measured["reload_errors"] = sum(r["errors"] for r in reload_runs)
    each = {k: " ".join(f"{x:.1f}" for x in measured[k]) for k in ("in_process_qps", "engine_qps")}
    stats = measured["server"]
    print(
        f"in-process Searcher, batches of {args.batch}: {searcher:.1f} q/s "
        f"(each: {each['in_process_qps']})"
    )
    print(
        f"in-process server batch code (execute.process), batches of {args.batch}: "
        f"{engine:.1f} q/s "
        f"(each: {each['engine_qps']})"
    )
    print(f"micro-batching: QPS {most} clients / 1 client = {top / one:.2f}x (goal >= 3)")
    print(
        f"HTTP bound: QPS {most} clients / in-process Searcher = {top / searcher:.2f}x "
        "(goal >= 0.8)"
    )
    print(f"HTTP overhead: QPS {most} clients / in-process server batch code = {top / engine:.2f}x")
    print(
        f"server batches: {stats['batches']} for {stats['queries']} queries, mean "
        f"{stats['mean_batch']}, largest {stats['largest_batch']}"
    )
    print(
        f"reload under load: {measured['reloads']} reloads during {measured['reload_requests']} "
        f"requests at {most} clients, {measured['reload_errors']} errors"
    )
    samples = [s for r in [*table, *reload_runs] for s in r.get("error_samples", [])][:3]
    if samples:
        print("error samples:", samples)
    if args.json:
        args.json.write_text(json.dumps({"levels": table, **measured}, indent=2))
    return sum(r["errors"] for r in table) + measured["reload_errors"]


def main() -> None:
    args = parse_args()
    # the setting `embedsearch serve` gives its server, for the in-process side too (both sides
    # alike; with spinning OpenMP threads the in-process side ran ~3x slower on the busy VM)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from embedsearch.runtime import prefer_huge_pages

    prefer_huge_pages()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    measured: dict = {"load_before": load_average()}
    args.work.mkdir(parents=True, exist_ok=True)
    index = build_corpus(args.work, args.rows, args.kind)
    levels = [int(x) for x in args.levels.split(",")]
    queries = make_queries(max(args.requests * 3, args.single_requests), args.rows)
    requests = [encode_request(index.name, kind, value, 10) for kind, value in queries]
    port = free_port()
    server = start_server(index, port, args.server_args.split())
    try:
        warm = run_level(port, requests[:60], 4, 60)  # loads the model, warms caches
        if warm["errors"]:
            raise SystemExit(f"warm-up requests failed: {warm['error_samples']}")
        runs = measure_levels(port, requests, levels, args)
        measured["server"] = health(port)
        measured["in_process_qps"], measured["engine_qps"] = [], []
        for _ in range(args.repeats):  # alternating, like the levels
            measured["in_process_qps"].append(
                in_process(index, queries[: args.requests], args.batch)
            )
            measured["engine_qps"].append(
                in_process_engine(index, queries[: args.requests], args.batch)
            )
        measured["reloads"], measured["reload_runs"] = measure_reload(
            port, index, requests[: args.requests * 3], max(levels), args
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    measured["load_after"] = load_average()
    sys.exit(1 if report(args, levels, runs, measured) else 0)


if __name__ == "__main__":
    main()
