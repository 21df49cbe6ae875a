"""Demo quality and time: held-out text->image recall@1/@5 after the demo's training budget.

Runs ``embedsearch demo`` exactly as a user does (a subprocess with the defaults, so the
wall time includes start-up), shows its output, then prints the per-epoch curve of the
training run and the demo's held-out recall -- held-out captions searching among the
held-out images through the built index -- next to chance (random ranking), and the wall
time of every stage. Goals: recall@5 >= 0.5, whole demo < 5 minutes on 2 cores.

    flock /tmp/embedsearch-bench.lock python benchmarks/clip_demo_recall.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from embedsearch.train.metrics import read_metrics


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=None, help="keep the demo folder here")
    parser.add_argument("demo_args", nargs="*", help="extra `embedsearch demo` options, after --")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "demo"
        if out.exists():
            shutil.rmtree(out)
        command = [sys.executable, "-m", "embedsearch", "demo", "--out", str(out), *args.demo_args]
        tic = time.perf_counter()
        done = subprocess.run(
            command,
            check=False,
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "100"},
        )
        total = time.perf_counter() - tic
        print(done.stdout)
        if done.returncode != 0:
            sys.exit(f"demo failed ({done.returncode}): {done.stderr[-2000:]}")
        result = json.loads((out / "demo.json").read_text())
        curve = read_metrics(out / "model")
    print("| epoch | loss | pairs/s | held-out t→i R@1 | held-out t→i R@5 | held-out i→t R@5 |")
    print("|---|---|---|---|---|---|")
    for r in curve:
        print(
            f"| {r['epoch']} | {r['loss']:.3f} | {r['images_per_s']:.0f} "
            f"| {r['eval_text_to_image_r1']:.3f} "
            f"| {r['eval_text_to_image_r5']:.3f} | {r['eval_image_to_text_r5']:.3f} |"
        )
    held = result["held_out"]
    print(
        f"\n| demo ({result['images']} images, {result['epochs']} epochs, {held} held out) "
        "| value | chance |"
    )
    print("|---|---|---|")
    print(
        f"| text→image recall@1 (through the index) | {result['recall_at_1']:.3f} "
        f"| {1 / held:.3f} |"
    )
    print(
        f"| text→image recall@5 (through the index) | {result['recall_at_5']:.3f} "
        f"| {result['chance_at_5']:.3f} |"
    )
    precision = sum(result["precision_at_k"].values()) / len(result["precision_at_k"])
    print(f"| demo queries: top-5 hits matching every attribute | {precision:.2f} | |")
    for stage, seconds in result["seconds"].items():
        print(f"| seconds: {stage} | {seconds:.1f} | |")
    print(f"| seconds: whole `embedsearch demo` command | {total:.1f} | |")
    r5 = result["recall_at_5"]
    print(
        f"\nrecall@5 / chance: {r5 / result['chance_at_5']:.1f}x; "
        f"goal recall@5 >= 0.5: {'met' if r5 >= 0.5 else 'NOT met'}; "
        f"goal < 300 s: {'met' if total < 300 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
