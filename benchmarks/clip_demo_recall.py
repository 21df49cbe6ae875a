"""Demo quality and time: held-out recall and per-attribute precision after the demo's training.

Runs ``embedsearch demo`` exactly as a user does (a subprocess with the defaults, so the
wall time includes start-up), then prints the per-epoch curve of the training run, the
demo's held-out recall -- held-out captions searching among the held-out images through
the built index -- next to chance, the top-5 precision per attribute (shape, colour, size,
position: see ``clip_attributes.py``), the wall time of every stage and the CPU time
(user + sys) of the whole command, its DataLoader workers included.

With ``--before TREE`` (a checkout of the older code, e.g. ``git archive BASE | tar -x -C
TREE``) the demo of that tree and of this one run alternately (or at once, ``--parallel``),
``--repeats`` times each, and one table shows both sides (medians).
Goals: recall@5 >= 0.7, no more CPU time than before.

    flock /tmp/embedsearch-bench.lock python benchmarks/clip_demo_recall.py [--before TREE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clip_attributes import ATTRIBUTES, chance, score_run  # noqa: E402

from embedsearch.train.metrics import read_metrics  # noqa: E402

HERE = Path(__file__).resolve().parents[1]


def start_demo(tree: Path, out: Path, demo_args: list[str]) -> dict[str, Any]:
    """Start one ``embedsearch demo`` with the package of ``tree`` (a child process)."""
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "embedsearch", "demo", "--out", str(out), *demo_args]
    env = {**os.environ, "COLUMNS": "100", "PYTHONPATH": str(tree)}
    log = open(out.with_suffix(".log"), "w")  # noqa: SIM115 (closed in finish_demo)
    # cwd=tree: `python -m` puts the working directory ahead of PYTHONPATH on sys.path.
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, text=True, env=env, cwd=tree
    )
    return {
        "process": process,
        "log": log,
        "out": out,
        "tic": time.perf_counter(),
        "load": os.getloadavg()[0],
        "tree": tree,
    }


def finish_demo(started: dict[str, Any]) -> dict[str, Any]:
    """Wait for a demo; its results, wall time and CPU time (its own children included)."""
    # wait4 gives this child's own rusage (with its reaped DataLoader workers), so two demos
    # running at once are measured apart.
    _, status, usage = os.wait4(started["process"].pid, 0)
    started["process"].returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started["tic"]
    started["log"].close()
    out = started["out"]
    printed = out.with_suffix(".log").read_text()
    if started["process"].returncode != 0:
        sys.exit(f"demo of {started['tree']} failed: {printed[-2000:]}")
    result = json.loads((out / "demo.json").read_text())
    result["printed"] = printed
    result["curve"] = read_metrics(out / "model")
    result["attributes"] = score_run(out / "model", out / "corpus" / "pairs.csv")
    result["chance"] = chance(out / "corpus" / "pairs.csv")
    result["wall_s"] = wall
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    result["load"] = (started["load"] + os.getloadavg()[0]) / 2
    return result


def print_curve(name: str, curve: list[dict[str, Any]]) -> None:
    print(f"\n{name}: training curve")
    print("| epoch | loss | pairs/s | held-out t→i R@1 | held-out t→i R@5 | held-out i→t R@5 |")
    print("|---|---|---|---|---|---|")
    for r in curve:
        print(
            f"| {r['epoch']} | {r['loss']:.3f} | {r['images_per_s']:.0f} "
            f"| {r['eval_text_to_image_r1']:.3f} "
            f"| {r['eval_text_to_image_r5']:.3f} | {r['eval_image_to_text_r5']:.3f} |"
        )


def rows_of(result: dict[str, Any]) -> dict[str, float]:
    """The figures of one demo run, by row label."""
    precision = result["precision_at_k"]
    rows = {
        "text→image recall@1 (through the index)": result["recall_at_1"],
        "text→image recall@5 (through the index)": result["recall_at_5"],
    }
    for attribute in (*ATTRIBUTES, "all four"):
        rows[f"top-5 precision: {attribute}"] = result["attributes"][attribute]
    rows["demo queries: top-5 hits matching every attribute"] = sum(precision.values()) / len(
        precision
    )
    for stage, seconds in result["seconds"].items():
        rows[f"seconds: {stage}"] = seconds
    rows["wall seconds: whole `embedsearch demo`"] = result["wall_s"]
    rows["CPU seconds (user+sys): whole `embedsearch demo`"] = result["cpu_s"]
    rows["load average during the run"] = result["load"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=None, help="keep the demo folders here")
    parser.add_argument("--before", type=Path, default=None, help="tree of the older code")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--only", choices=("before", "now"), help="run one side only")
    parser.add_argument(
        "--parallel", action="store_true", help="run the two sides at once (same load for both)"
    )
    parser.add_argument("demo_args", nargs="*", help="extra `embedsearch demo` options, after --")
    args = parser.parse_args()
    sides = {"before": args.before.resolve()} if args.before else {}
    sides["now"] = HERE
    if args.only:
        sides = {args.only: sides[args.only]}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        for i in range(args.repeats):
            started: dict[str, dict[str, Any]] = {}
            for name, tree in sides.items():
                started[name] = start_demo(tree, root / f"demo-{name}-{i}", args.demo_args)
                if not args.parallel:
                    runs[name].append(finish_demo(started.pop(name)))
            for name, one in started.items():
                runs[name].append(finish_demo(one))
            for name in sides:
                print(f"{name}: {json.dumps(rows_of(runs[name][-1]))}", flush=True)
    main_side = "now" if "now" in runs else "before"
    print(runs[main_side][-1]["printed"])
    for name in sides:
        print_curve(name, runs[name][-1]["curve"])
    last = runs[main_side][-1]
    print(f"\n| demo ({last['images']} images, {last['held_out']} held out) | " + " | ".join(sides))
    print("|---" * (len(sides) + 1) + "|")
    tables = {name: [rows_of(r) for r in rs] for name, rs in runs.items()}
    for label in tables[main_side][0]:
        cells = [statistics.median(t[label] for t in tables[name]) for name in sides]
        print(f"| {label} | " + " | ".join(f"{c:.3f}" if c < 10 else f"{c:.1f}" for c in cells))
    print(f"| chance recall@5 | {last['chance_at_5']:.3f} |")
    for attribute in ATTRIBUTES:
        print(f"| chance top-5 precision: {attribute} | {last['chance'][attribute]:.3f} |")
    r5 = statistics.median(r["recall_at_5"] for r in runs[main_side])
    print(f"\ngoal recall@5 >= 0.7: {'met' if r5 >= 0.7 else 'NOT met'} ({r5:.3f})")
    if len(runs) == 2:
        cpu = {name: statistics.median(r["cpu_s"] for r in runs[name]) for name in sides}
        print(f"CPU time now / before: {cpu['now'] / cpu['before']:.2f}")


if __name__ == "__main__":
    main()
