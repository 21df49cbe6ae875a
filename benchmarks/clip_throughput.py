"""CLIP training throughput: the shared loop (``pretrain_clip``) vs a plain reference loop.

Both train the same model (``tiny-clip`` by default) on the same pairs with the same
batch size, DataLoader workers and torch threads; the plain loop is the textbook
PyTorch loop (shuffle, forward, CLIP loss, AdamW step) with nothing else. Rounds
alternate (loop, plain, loop, plain, ...) so that load from other jobs on a shared
machine hits both alike; the table shows each round and the medians.
Goal: loop pairs/s >= 0.9 x plain pairs/s.

    flock /tmp/embedsearch-bench.lock python benchmarks/clip_throughput.py --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from embedsearch.data.pairs import load_pairs
from embedsearch.data.shapes import make_shapes_corpus
from embedsearch.train.clip import ClipTask, pretrain_clip
from embedsearch.train.clip_loss import clip_loss
from embedsearch.train.metrics import read_metrics


def loop_pairs_per_second(pairs: Path, out: Path, args: argparse.Namespace) -> float:
    """pairs/s of the shared loop over ``args.epochs`` epochs (its own timer: steps only)."""
    pretrain_clip(
        pairs,
        out=out,
        model=args.model,
        epochs=args.epochs,
        batch_size=args.batch_size,
        val_fraction=0.0,
        workers=args.workers,
        threads=args.threads,
        lr=1e-3,
    )
    records = read_metrics(out)
    return sum(r["images"] for r in records) / sum(r["seconds"] for r in records)


def plain_pairs_per_second(pairs: Path, args: argparse.Namespace) -> float:
    """pairs/s of a minimal PyTorch loop with the same model, data, batch and optimiser."""
    loaded = load_pairs(pairs)
    task = ClipTask(loaded, loaded.subset([]), args.model.replace("tiny", "tiny-clip"))
    model = task.build_model().train()
    groups = [
        {
            "params": [p for n, p in model.named_parameters() if not task.exclude_from_decay(n, p)],
            "weight_decay": 0.1,
        },
        {
            "params": [p for n, p in model.named_parameters() if task.exclude_from_decay(n, p)],
            "weight_decay": 0.0,
        },
    ]
    optimizer = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.98), eps=1e-6)
    dataset = task.dataset()
    pairs_seen, seconds = 0, 0.0
    for epoch in range(args.epochs):
        loader = DataLoader(
            dataset,
            batch_size=args.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=args.workers,
            generator=torch.Generator().manual_seed(epoch),
        )
        tic = time.perf_counter()  # like the loop's timer: loader start-up counts, setup does not
        for pixels, tokens, _ in loader:
            image_features, text_features, scale = model(pixels, tokens)[:3]
            loss = clip_loss(image_features, text_features, scale.log())
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            pairs_seen += len(pixels)
        seconds += time.perf_counter() - tic
    return pairs_seen / seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=640, help="pairs in the corpus")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        pairs = make_shapes_corpus(Path(tmp) / "shapes", n=args.n, seed=0).pairs
        loop, plain = [], []
        for r in range(args.rounds):
            loop.append(loop_pairs_per_second(pairs, Path(tmp) / f"run{r}", args))
            plain.append(plain_pairs_per_second(pairs, args))
            print(
                f"round {r + 1}: loop {loop[-1]:8.1f} pairs/s   plain {plain[-1]:8.1f} pairs/s",
                flush=True,
            )
    ratio = statistics.median(loop) / statistics.median(plain)
    print(
        f"\n| {args.model} batch {args.batch_size}, {args.workers} worker(s), "
        f"{args.threads} threads "
        f"| loop pairs/s | plain pairs/s | ratio |"
    )
    print("|---|---|---|---|")
    print(
        f"| median of {args.rounds} alternating rounds | {statistics.median(loop):.1f} | "
        f"{statistics.median(plain):.1f} | {ratio:.3f} |"
    )
    print(
        f"\nloop / plain throughput: {ratio:.3f} "
        f"(goal >= 0.9: {'met' if ratio >= 0.9 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
