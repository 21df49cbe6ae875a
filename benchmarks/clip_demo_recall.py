"""Demo quality and time: held-out text->image recall@1/@5 after the demo's training budget.

Runs :func:`embedsearch.demo.run_demo` with its defaults (the same as ``embedsearch demo``)
and prints the recall of held-out captions among the held-out images -- measured through
the built index -- next to chance (random ranking), the per-epoch curve of the training
run, and the wall time of every stage. Goals: recall@5 >= 0.5, whole demo < 5 minutes.

    flock /tmp/embedsearch-bench.lock python benchmarks/clip_demo_recall.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from embedsearch.demo import run_demo
from embedsearch.train.metrics import read_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=None, help="images (default: the demo's)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the demo's)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    options = {k: v for k, v in (("n", args.n), ("epochs", args.epochs), ("threads", args.threads)) if v}
    with tempfile.TemporaryDirectory() as tmp:
        tic = time.perf_counter()
        result = run_demo(Path(tmp) / "demo", **options)
        total = time.perf_counter() - tic
        curve = read_metrics(result.out / "model")
    print("| epoch | loss | pairs/s | held-out t→i R@1 | held-out t→i R@5 | held-out i→t R@5 |")
    print("|---|---|---|---|---|---|")
    for r in curve:
        print(f"| {r['epoch']} | {r['loss']:.3f} | {r['images_per_s']:.0f} | {r['eval_text_to_image_r1']:.3f} "
              f"| {r['eval_text_to_image_r5']:.3f} | {r['eval_image_to_text_r5']:.3f} |")
    held = result.held_out
    print(f"\n| demo ({result.images} images, {result.epochs} epochs, {held} held out) | value | chance |")
    print("|---|---|---|")
    print(f"| text→image recall@1 (through the index) | {result.recall_at_1:.3f} | {1 / held:.3f} |")
    print(f"| text→image recall@5 (through the index) | {result.recall_at_5:.3f} | {result.chance_at_5:.3f} |")
    mean_precision = sum(q.precision for q in result.queries) / len(result.queries)
    print(f"| demo queries: top-5 hits matching every attribute | {mean_precision:.2f} | |")
    for stage, seconds in result.seconds.items():
        print(f"| seconds: {stage} | {seconds:.1f} | |")
    print(f"| seconds: whole demo | {total:.1f} | |")
    print(f"\nrecall@5 / chance: {result.recall_at_5 / result.chance_at_5:.1f}x; "
          f"goal recall@5 >= 0.5: {'met' if result.recall_at_5 >= 0.5 else 'NOT met'}; "
          f"goal < 300 s: {'met' if total < 300 else 'NOT met'}")


if __name__ == "__main__":
    main()
