"""An index larger than the memory its searcher may use: built in shards, searched memory-mapped.

Uses the embedding dir that ``dedup_scale.py`` generates (``--n`` synthetic 128-d vectors:
a 24-d latent plus noise, 1 % near copies; reused when present), then:

1. **build**: ``embedsearch index EMB --out OUT --kind ivf --num-shards S --max-memory M`` in
   a child process (every shard in turn in that one process: a worker holds one block of its
   shard at a time, and the merge writes the lists to an on-disk index when they exceed M).
   Wall time, CPU seconds, peak RSS of the process tree (sampled every 0.2 s), load average.
2. **search**: a child moved into a fresh memory cgroup (v1 ``memory.limit_in_bytes`` or v2
   ``memory.max``) of ``--search-limit`` bytes opens the index with ``Searcher.open`` and
   answers ``--queries`` corpus rows (plus small noise): open seconds, single-query p50/p99 cold
   (first pass) and warm, batch QPS, peak RSS and the cgroup's peak usage. Their recall@10 is
   measured against exact search over every row (streamed here, outside the cgroup).
3. **control**: a child in the same cgroup that allocates 1.5x the limit must be killed, which
   shows the limit is enforced.

    flock /tmp/embedsearch-bench.lock python benchmarks/index_scale.py --n 10000000 \\
        --work /tmp/es-scale --search-limit 2G
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, print_table
from dedup_scale import generate

SEARCH_CHILD = r"""
import json, sys, time
import numpy as np
t0 = time.perf_counter()
from embedsearch.index import Searcher, layout
queries = np.load(sys.argv[2])
started = time.perf_counter()
s = Searcher.open(sys.argv[1])
opened = time.perf_counter() - started
def singles(rows):
    times = []
    for row in rows:
        t = time.perf_counter()
        s.search_raw(row[None, :], 10)
        times.append(time.perf_counter() - t)
    return np.percentile(times, 50) * 1000, np.percentile(times, 99) * 1000
cold = singles(queries[:200])
warm = singles(queries[:200])
t = time.perf_counter(); _, keys = s.search_raw(queries, 10); batch = time.perf_counter() - t
np.save(sys.argv[3], keys)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
lists = type(__import__("faiss").extract_index_ivf(s.index).invlists).__name__
print(json.dumps({"open_s": opened, "cold_p50_ms": cold[0], "cold_p99_ms": cold[1],
  "warm_p50_ms": warm[0], "warm_p99_ms": warm[1], "batch_qps": len(queries) / batch,
  "vm_hwm_mib": int(hwm) / 1024, "storage": s.index_info.storage, "lists": lists}))
"""


def _rss_parts(pid: int) -> tuple[int, int]:
    """(anonymous, file-backed) resident bytes of ``pid``: mapped index pages count as the
    second, which the kernel can evict; the heap as the first."""
    parts = {"RssAnon:": 0, "RssFile:": 0}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                name = line.split(maxsplit=1)[0]
                if name in parts:
                    parts[name] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return parts["RssAnon:"], parts["RssFile:"]


def measured(cmd: list[str], env: dict[str, str] | None, logs: Path) -> dict:
    """Run ``cmd``: its last stdout line (JSON if it is), wall s, CPU s, peak RSS of the process
    tree (total, and its anonymous part), the load average before and after."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    with open(logs.with_suffix(".out"), "w") as out, open(logs.with_suffix(".err"), "w") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        parent, peak, anon_peak, cpu = psutil.Process(proc.pid), 0, 0, {}
        while proc.poll() is None:
            try:
                tree = [parent, *parent.children(recursive=True)]
                rss = [_rss_parts(p.pid) for p in tree]
                peak = max(peak, sum(a + f for a, f in rss))
                anon_peak = max(anon_peak, sum(a for a, _ in rss))
                for p in tree:
                    times = p.cpu_times()
                    cpu[p.pid] = times.user + times.system
            except psutil.Error:
                pass
            time.sleep(0.2)
    lines = logs.with_suffix(".out").read_text().strip().splitlines()
    try:
        result = json.loads("\n".join(lines)) if lines else {}
    except json.JSONDecodeError:
        try:
            result = json.loads(lines[-1])
        except json.JSONDecodeError:
            result = {"stdout": lines[-1][:200]}
    return {
        "rc": proc.returncode,
        "wall_s": time.perf_counter() - started,
        "cpu_s": sum(cpu.values()),
        "peak_rss_mib": peak / 2**20,
        "peak_anon_mib": anon_peak / 2**20,
        "load": f"{load:.1f} -> {os.getloadavg()[0]:.1f}",
        "result": result,
        "stderr": logs.with_suffix(".err").read_text().strip().splitlines()[-3:],
    }


def evict(folder: Path) -> None:
    """Drop ``folder``'s files from the page cache (``POSIX_FADV_DONTNEED``, those files only):
    pages cached by the build would otherwise be charged to the build, not to the searcher."""
    for path in folder.iterdir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def memory_cgroup(name: str, limit: int) -> tuple[Path, Path, Path]:
    """A fresh memory cgroup of ``limit`` bytes: (procs file, limit file, peak-usage file)."""
    v1 = Path("/sys/fs/cgroup/memory")
    if v1.is_dir():
        group = v1 / name
        group.mkdir(exist_ok=True)
        (group / "memory.limit_in_bytes").write_text(str(limit))
        (group / "memory.max_usage_in_bytes").write_text("0")
        return (
            group / "cgroup.procs",
            group / "memory.limit_in_bytes",
            group / ("memory.max_usage_in_bytes"),
        )
    group = Path("/sys/fs/cgroup") / name
    group.mkdir(exist_ok=True)
    (group / "memory.max").write_text(str(limit))
    return group / "cgroup.procs", group / "memory.max", group / "memory.peak"


def exact_top10(emb: Path, queries: np.ndarray) -> np.ndarray:
    """Exact inner-product top-10 ids of ``queries`` over every row (streamed)."""
    import faiss

    from embedsearch.store.reader import iter_vectors

    heap = faiss.ResultHeap(len(queries), 10, keep_max=True)
    for ids, block in iter_vectors(emb, batch_rows=262_144):
        scores, rows = faiss.knn(queries, block, 10, metric=faiss.METRIC_INNER_PRODUCT)
        heap.add_result(scores, np.where(rows >= 0, ids[np.maximum(rows, 0)], -1))
    heap.finalize()
    return heap.I


def fresh_queries(emb: Path, n: int, seed: int = 7) -> np.ndarray:
    """``n`` rows of the first shard plus a little noise (queries near, not on, the corpus)."""
    from embedsearch.store.reader import iter_vectors

    _, block = next(iter_vectors(emb, batch_rows=max(n, 1000)))
    rng = np.random.default_rng(seed)
    q = block[:n] + 0.05 * rng.standard_normal(block[:n].shape).astype(np.float32)
    return np.ascontiguousarray(q / np.linalg.norm(q, axis=1, keepdims=True), np.float32)


def in_cgroup(name: str, limit: str, cmd: list[str], env: dict[str, str], logs: Path) -> dict:
    """:func:`measured` of ``cmd`` run inside a fresh memory cgroup of ``limit`` ('' = none)."""
    if not limit:
        return measured(cmd, env, logs) | {"cgroup_peak_mib": None}
    procs, _, peak_file = memory_cgroup(name, parse_bytes(limit))
    shell = f'echo $$ > {procs} && exec "$@"'
    result = measured(["sh", "-c", shell, "sh", *cmd], env, logs)
    result["cgroup_peak_mib"] = int(peak_file.read_text()) / 2**20
    result["limit"] = limit
    return result


def _row(step: str, m: dict) -> list:
    cells = [step, m["wall_s"], m["cpu_s"], m["peak_rss_mib"], m["peak_anon_mib"]]
    return [*cells, m.get("cgroup_peak_mib") or "-", m["load"], m["rc"]]


def parse_bytes(text: str) -> int:
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].isalpha() else int(text)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n", type=int, default=10_000_000)
    p.add_argument("--emb", type=Path, help="an existing embedding dir of --n rows to use")
    p.add_argument("--work", type=Path, default=Path("/tmp/es-scale"))
    p.add_argument("--kind", default="ivf")
    p.add_argument("--num-shards", type=int, default=4)
    p.add_argument("--max-memory", default="2G")
    p.add_argument("--search-limit", default="2G")
    p.add_argument("--build-limit", default="3G", help="memory cgroup of the build ('' = none)")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--skip-build", action="store_true")
    p.add_argument("--cleanup", action="store_true", help="remove the index afterwards")
    args = p.parse_args()
    print(f"machine: {machine()}")
    emb = args.emb or generate(args.work / "emb", args.n, 128)
    out = args.work / f"index-{args.n}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    rows = []
    headers = ["step", "wall s", "CPU s", "peak RSS MiB", "anon MiB", "cgroup peak MiB"]
    headers += ["load", "rc"]
    if not args.skip_build:
        build = [sys.executable, "-m", "embedsearch", "index", str(emb), "--out", str(out)]
        build += ["--kind", args.kind, "--num-shards", str(args.num_shards)]
        build += ["--max-memory", args.max_memory, "--format", "json", "--overwrite"]
        b = in_cgroup("es-scale-build", args.build_limit, build, env, args.work / "build")
        print(json.dumps({k: v for k, v in b.items() if k != "result"}), flush=True)
        rows.append(_row("build", b))
    info = json.loads((out / "index.json").read_text())
    vector_bytes = args.n * 128 * 4
    print(
        f"index: {info['factory']}, storage {info.get('storage')}, {info['memory_bytes']:,} bytes "
        f"({info['memory_bytes'] / vector_bytes:.2f}x the vectors), recall@10 "
        f"{info['recall']['recall_at_k']} at {info['search_params']}, latency {info['latency']}, "
        f"shards {info.get('shards')}"
    )
    queries = fresh_queries(emb, args.queries)
    np.save(args.work / "queries.npy", queries)
    evict(out)
    script = [sys.executable, "-c", SEARCH_CHILD, str(out), str(args.work / "queries.npy")]
    script.append(str(args.work / "keys.npy"))
    s = in_cgroup("es-scale-search", args.search_limit, script, env, args.work / "search")
    print(json.dumps(s), flush=True)
    rows.append(_row("search", s))
    limit = parse_bytes(args.search_limit)
    hog = [sys.executable, "-c", f"import numpy as np; print(np.ones({int(limit * 1.5) // 8}))"]
    c = in_cgroup("es-scale-search", args.search_limit, hog, env, args.work / "control")
    rows.append(_row("control: 1.5x limit", c))
    truth = exact_top10(emb, queries[:200])
    found = np.load(args.work / "keys.npy")[:200]
    recall = np.mean([len(np.intersect1d(f, t)) / 10 for f, t in zip(found, truth, strict=True)])
    print(f"recall@10 of 200 fresh queries under the {args.search_limit} cgroup: {recall:.4f}")
    print_table(headers, rows)
    if args.cleanup:
        import shutil

        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
