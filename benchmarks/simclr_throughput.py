"""Training throughput: the pretrain loop on image files vs a plain loop over pre-loaded tensors.

Both train the same SimCLR model (ResNet + projection head, NT-Xent) with the same
batch, optimiser and thread count. The plain loop feeds two fixed pre-augmented view
tensors that sit in memory; the project's loop (:func:`embedsearch.train.loop.train`)
decodes PNG files and augments two views per image (in the training process by default on
a small CPU, or in ``--workers N`` DataLoader workers). A ratio near 1 means the data
pipeline does not starve the model (goal >= 0.9). Runs alternate (plain, loop, plain,
loop, ...) so machine load hits both alike; several ``--workers`` values are measured in
the same alternation.

    flock /tmp/embedsearch-bench.lock python benchmarks/simclr_throughput.py --workers default 1
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from embedsearch.data.augment import SimCLRAugment
from embedsearch.data.workers import default_training_workers
from embedsearch.train.loop import TrainConfig, train
from embedsearch.train.losses import nt_xent_loss
from embedsearch.train.optim import build_optimizer, split_decay_groups
from embedsearch.train.simclr import SimCLRTask


def plain_loop(task: SimCLRTask, args: argparse.Namespace) -> float:
    """Images/s of a bare training loop over in-memory view tensors (no data pipeline at all)."""
    model = task.build_model().to(memory_format=torch.channels_last)
    groups = split_decay_groups(model, 1e-6, lambda n, p: p.ndim <= 1)
    optimizer = build_optimizer(args.optimizer, groups, lr=0.1)
    size, batch = args.image_size, args.batch_size
    views = torch.randn(2 * batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    model.train()
    tic = time.perf_counter()
    for _ in range(args.steps):
        z = model(views)
        loss = nt_xent_loss(z[:batch], z[batch:], task.temperature)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return args.steps * batch / (time.perf_counter() - tic)


def project_loop(task: SimCLRTask, args: argparse.Namespace, out: Path, workers: str) -> float:
    """Images/s the pretrain loop reports for one epoch of ``steps`` steps on image files."""
    config = TrainConfig(
        out=out,
        epochs=1,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=0.1,
        device="cpu",
        workers=None if workers == "default" else int(workers),
        threads=args.threads,
        channels_last=True,
    )
    summary = train(task, config)
    return float(summary.metrics[-1]["images_per_s"])


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--stem", choices=["small", "standard"], default="standard")
    p.add_argument("--source-size", type=int, default=48, help="side of the PNG files on disk")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--optimizer", default="lars")
    p.add_argument(
        "--workers",
        nargs="+",
        default=["default"],
        help="DataLoader worker counts to measure ('default': the loop's own choice)",
    )
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    work = Path(tempfile.mkdtemp(prefix="simclr-tput-"))
    rng = np.random.default_rng(0)
    (work / "images").mkdir()
    for i in range(args.batch_size * args.steps):
        pixels = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        side = args.source_size
        Image.fromarray(pixels).resize((side, side), Image.Resampling.BICUBIC).save(
            work / "images" / f"{i:05d}.png"
        )
    augment = SimCLRAugment(args.image_size, 0.5, (0.3, 1.0), jpeg_prob=0.5)
    task = SimCLRTask(
        image_dir=work / "images",
        arch=args.arch,
        augment=augment,
        temperature=0.1,
        small_stem=args.stem == "small",
    )

    plain: list[float] = []
    ours: dict[str, list[float]] = {w: [] for w in args.workers}
    for r in range(args.repeats):
        plain.append(plain_loop(task, args))
        line = f"repeat {r + 1}: plain {plain[-1]:.2f} img/s"
        for w in args.workers:
            ours[w].append(project_loop(task, args, work / f"run{r}-w{w}", w))
            line += f", pretrain loop (workers {w}) {ours[w][-1]:.2f} img/s"
        print(line, flush=True)
    plain_median = statistics.median(plain)
    print(
        f"\n| loop ({args.arch}, {args.image_size} px {args.stem} stem, batch {args.batch_size}, "
        f"{args.threads} threads; default workers here: {default_training_workers('cpu')}) "
        f"| images/s (median of {args.repeats}) | ratio |"
    )
    print("|---|---:|---:|")
    print(f"| plain loop, pre-loaded tensors | {plain_median:.2f} | 1.000 |")
    for w, rates in ours.items():
        median = statistics.median(rates)
        print(
            f"| embedsearch pretrain loop, PNG files + augmentation, workers {w} | {median:.2f} | "
            f"{median / plain_median:.3f} |"
        )
    print("\ngoal: ratio >= 0.9")


if __name__ == "__main__":
    main()
