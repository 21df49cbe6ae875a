"""Invariance benchmark: does SimCLR pretraining make copies of real photos findable?

Cuts crops from scikit-image's sample photos (``embedsearch.data.copies``): ``--n-train``
crops to pretrain on, ``--n-corpus`` others as the search corpus, and one strongly
transformed copy of each corpus crop (crop 60-85 %, brightness/contrast +-30 %, flips,
JPEG 25-60). Reports recall@1 of copy -> original for

- the SimCLR encoder, evaluated every few epochs (a curve over training time),
- the same architecture at random init,
- imagededup's PHash (Hamming distance), run in its own virtualenv
  (``benchmarks/setup_imagededup_venv.sh``), when ``--phash-python`` points at it.

Training time is budgeted in *core-seconds* of the training process (torch threads plus
DataLoader workers, evaluation excluded): ``--budget-min`` minutes of this 2-core machine
are ``budget-min * 60 * cores`` core-seconds, so other people's jobs on a shared machine
slow the wall clock but not the budget. The schedule (epochs) is planned to end on it.

    flock /tmp/embedsearch-bench.lock python benchmarks/simclr_invariance.py --budget-min 15
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import torch
import torch.nn.functional as F

from embedsearch.data.augment import SimCLRAugment
from embedsearch.data.copies import make_copy_set, write_copy_set
from embedsearch.encoders.base import ImagePreprocess
from embedsearch.encoders.rundir import RunConfig
from embedsearch.train.loop import TrainConfig, train
from embedsearch.train.losses import nt_xent_loss
from embedsearch.train.optim import build_optimizer, split_decay_groups
from embedsearch.train.simclr import SimCLRTask


def core_seconds() -> float:
    """CPU seconds used so far by this process and its (reaped) DataLoader workers."""
    t = psutil.Process().cpu_times()
    return t.user + t.system + t.children_user + t.children_system


@torch.no_grad()
def recall_at_1(
    backbone: torch.nn.Module, config: RunConfig, corpus: list, copies: list, copy_of: np.ndarray
) -> float:
    """Fraction of copies whose nearest corpus image (cosine) is their original."""
    backbone.eval()
    pre = ImagePreprocess.of(config)

    def embed(images: list) -> torch.Tensor:
        out = [
            backbone(torch.stack([pre(im) for im in images[i : i + 128]]))
            for i in range(0, len(images), 128)
        ]
        return F.normalize(torch.cat(out).float(), dim=1)

    nearest = (embed(copies) @ embed(corpus).T).argmax(dim=1).numpy()
    return float((nearest == copy_of).mean())


class CopyRecallTask(SimCLRTask):
    """SimCLR whose per-epoch eval is copy recall@1, timed in training core-seconds."""

    def attach(self, copy_set, cores: int, every: int, total_epochs: int) -> None:
        self.copy_set, self.cores, self.curve = copy_set, cores, []
        self.every, self.total_epochs = every, total_epochs
        self.eval_core_s, self.started, self.wall0 = 0.0, core_seconds(), time.perf_counter()

    def evaluate(self, model, device) -> dict[str, float]:
        self.epochs_seen = getattr(self, "epochs_seen", 0) + 1
        if self.epochs_seen % self.every and self.epochs_seen != self.total_epochs:
            return {}  # evaluating costs wall time (not budget); every few epochs draws the curve
        before = core_seconds()
        train_core_s = before - self.started - self.eval_core_s
        s = self.copy_set
        recall = recall_at_1(model.backbone, self.config(), s.corpus, s.copies, s.copy_of)
        self.eval_core_s += core_seconds() - before
        point = {
            "epoch": self.epochs_seen,
            "train_core_s": round(train_core_s, 1),
            "train_min": round(train_core_s / 60 / self.cores, 2),
            "wall_s": round(time.perf_counter() - self.wall0, 1),
            "recall_at_1": recall,
        }
        self.curve.append(point)
        print(
            f"  epoch {self.epochs_seen:3d}  train core-s {train_core_s:8.1f} "
            f"(~{point['train_min']:5.1f} min "
            f"on {self.cores} cores, wall {point['wall_s'] / 60:5.1f} min)  recall@1 {recall:.3f}",
            flush=True,
        )
        return {"copy_recall_at_1": recall}


def phash_recall(python: str, copy_dir: Path, copy_of: np.ndarray) -> float:
    """recall@1 of imagededup PHash (nearest corpus hash by Hamming distance)."""
    code = (
        "import json,sys,pathlib;from imagededup.methods import PHash;p=PHash(verbose=False);"
        "d=pathlib.Path(sys.argv[1]);"
        "print(json.dumps({k:{f.name:p.encode_image(image_file=str(f))"
        " for f in sorted((d/k).iterdir())} for k in ('corpus','copies')}))"
    )
    out = subprocess.run(
        [python, "-c", code, str(copy_dir)], check=True, capture_output=True, text=True
    ).stdout
    hashes = json.loads(out)
    corpus = np.array([[int(c, 16) for c in h] for h in hashes["corpus"].values()], dtype=np.uint8)
    copies = np.array([[int(c, 16) for c in h] for h in hashes["copies"].values()], dtype=np.uint8)

    def bits(a: np.ndarray) -> np.ndarray:
        return np.unpackbits(a[:, :, None], axis=2)[:, :, 4:].reshape(len(a), -1)

    distance = (bits(copies)[:, None, :] != bits(corpus)[None, :, :]).sum(axis=2)
    return float((distance.argmin(axis=1) == copy_of).mean())


def plan_epochs(task: SimCLRTask, cfg: TrainConfig, n_train: int, budget_core_s: float) -> int:
    """Epochs whose training fits the budget, from the core-seconds of probe steps.

    One untimed warm-up step (oneDNN picks its kernels on first use), then 3 timed steps
    with the run's optimiser; +15 % covers augmentation in the worker and bookkeeping.
    """
    model = task.build_model()
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    groups = split_decay_groups(model, cfg.weight_decay, task.exclude_from_decay)
    opt = build_optimizer(cfg.optimizer, groups, lr=1e-6)
    size, batch = task.augment.image_size, cfg.batch_size
    x = torch.randn(2 * batch, 3, size, size).contiguous(memory_format=memory_format)
    for step in range(4):
        if step == 1:
            before = core_seconds()
        z = model(x)
        nt_xent_loss(z[:batch], z[batch:], task.temperature).backward()
        opt.step()
        opt.zero_grad()
    per_step = (core_seconds() - before) / 3 * 1.15
    steps_per_epoch = n_train // batch
    epochs = max(1, int(budget_core_s / (per_step * steps_per_epoch)))
    print(
        f"probe: {per_step:.1f} core-s/step, {steps_per_epoch} steps/epoch -> {epochs} epochs",
        flush=True,
    )
    return epochs


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--budget-min", type=float, default=15.0)
    p.add_argument(
        "--epochs", type=int, default=None, help="fixed epochs instead of planning to the budget"
    )
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--n-corpus", type=int, default=300)
    p.add_argument("--size", type=int, default=48, help="crop side of the copy set")
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--stem", choices=["small", "standard"], default="standard")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--optimizer", default="lars")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--weight-decay", type=float, default=1e-6)
    p.add_argument("--warmup-epochs", type=float, default=1.0)
    p.add_argument("--temperature", type=float, default=0.1)
    p.add_argument("--color-strength", type=float, default=0.5)
    p.add_argument("--crop-min-scale", type=float, default=0.3)
    p.add_argument("--jpeg-prob", type=float, default=0.5)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument(
        "--eval-every", type=int, default=2, help="evaluate every N epochs (and the last)"
    )
    p.add_argument("--phash-python", default="/root/venv-imagededup/bin/python")
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/simclr_invariance"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    copy_set = make_copy_set(args.n_train, args.n_corpus, strength="strong", size=args.size, seed=0)
    work = Path(tempfile.mkdtemp(prefix="simclr-inv-"))
    write_copy_set(copy_set, work)
    augment = SimCLRAugment(
        args.image_size,
        args.color_strength,
        (args.crop_min_scale, 1.0),
        args.jpeg_prob,
        jpeg_quality=(25, 75),
    )
    task = CopyRecallTask(
        image_dir=work / "train",
        arch=args.arch,
        augment=augment,
        temperature=args.temperature,
        small_stem=args.stem == "small",
    )
    cfg = TrainConfig(
        out=args.out / "run",
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup_epochs=args.warmup_epochs,
        device="cpu",
        workers=args.workers,
        threads=args.threads,
        channels_last=not args.no_channels_last,
    )

    random_recall = recall_at_1(
        task.build_model().backbone,
        task.config(),
        copy_set.corpus,
        copy_set.copies,
        copy_set.copy_of,
    )
    phash = None
    if Path(args.phash_python).exists():
        phash = phash_recall(args.phash_python, work, copy_set.copy_of)
    budget = args.budget_min * 60 * args.cores
    cfg.epochs = args.epochs or plan_epochs(task, cfg, args.n_train, budget)
    print(f"random-init recall@1 {random_recall:.3f}; PHash recall@1 {phash}", flush=True)

    task.attach(copy_set, args.cores, args.eval_every, cfg.epochs)
    summary = train(task, cfg)
    best = max(pt["recall_at_1"] for pt in task.curve)
    final = task.curve[-1]
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()}-core CPU, no GPU",
        "args": {k: str(v) for k, v in vars(args).items()},
        "epochs": cfg.epochs,
        "steps": summary.steps,
        "random_init_recall_at_1": random_recall,
        "phash_recall_at_1": phash,
        "curve": task.curve,
        "final_recall_at_1": final["recall_at_1"],
        "gain_over_random": final["recall_at_1"] - random_recall,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "result.json").write_text(json.dumps(result, indent=2))
    print("\n| encoder | recall@1 copy->original |\n|---|---|")
    print(
        f"| random-init {args.arch} ({args.image_size} px, {args.stem} stem) "
        f"| {random_recall:.3f} |"
    )
    if phash is not None:
        print(f"| imagededup PHash | {phash:.3f} |")
    print(
        f"| SimCLR after {final['train_core_s'] / 60 / args.cores:.1f} min x {args.cores} cores "
        f"({cfg.epochs} epochs, wall {final['wall_s'] / 60:.1f} min) "
        f"| {final['recall_at_1']:.3f} (best {best:.3f}) |"
    )
    print(f"\ngain over random init: {final['recall_at_1'] - random_recall:+.3f} (goal >= +0.25)")


if __name__ == "__main__":
    sys.exit(main())
