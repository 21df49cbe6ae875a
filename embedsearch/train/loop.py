"""The one training loop behind every ``pretrain`` objective (SimCLR, CLIP, ...).

An objective plugs in by subclassing :class:`TrainTask`; the loop owns everything else.

The ``TrainTask`` protocol (what an objective provides):

- ``family``: name written to the run config (``"simclr"``, ``"openclip"``).
- ``build_model() -> nn.Module``: the whole trainable module (encoder + heads), seeded.
- ``dataset() -> Dataset``: items are fetched by ``dataset[(index, item_seed)]``; the
  seed makes each item's random augmentation a pure function of (run seed, epoch,
  index), so resume, worker count and DDP sharding never change what is seen. Raise
  :class:`~embedsearch.errors.InputError` for unusable input (empty folder, ...).
  ``collate_fn`` (optional attribute) batches items.
- ``loss(model, batch) -> Tensor``: the scalar loss of one (per-rank) micro-batch; the
  batch is already on the device. ``model`` may be DDP-wrapped: call it, don't reach in;
  use :func:`embedsearch.train.distributed.gather_with_grad` for cross-rank negatives.
- ``batch_items(batch) -> int``: how many samples a batch holds (for images/s).
- ``exclude_from_decay(name, param) -> bool``: no weight decay / LARS adaptation
  (default: every 1-d tensor, i.e. norms and biases).
- ``default_lr(optimizer, batch_size) -> float``.
- ``export(model) -> RunExport``: config, weights and extra tensors for ``save_run_dir``.
- ``load_init(model, run_dir)``: start from an earlier run's weights (``--init``).
- ``evaluate(model, device) -> dict[str, float]``: per-epoch eval hook (rank 0; the model
  is in eval mode); keys are logged to metrics.jsonl as ``eval_<key>``.
- ``recipe() -> dict``: objective settings stored in ``config.json["training"]``.
- ``epoch_stats() -> dict``: extra counters for this epoch's metrics record (then reset).

The loop owns: device and precision (bf16 autocast on CUDA, fp16 with a GradScaler,
fp32 on CPU), channels_last, thread count, the optimiser (LARS/SGD/AdamW) with a
per-step warmup + cosine schedule, gradient accumulation, DDP under torchrun (gloo on
CPU, nccl on CUDA, optional sync BN, only rank 0 writes), ``metrics.jsonl`` and
``loss.png`` per epoch, ``checkpoint/`` for an exact ``--resume`` (also mid-epoch),
Ctrl-C (finish the step, save a checkpoint, raise :class:`TrainingInterrupted`),
``--init``, progress reporting, and writing the run dir after every epoch.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Sized
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from embedsearch.data.workers import default_training_workers, worker_init
from embedsearch.devices import autocast, resolve_device, resolve_precision
from embedsearch.encoders.rundir import save_run_dir
from embedsearch.errors import InputError, ModelError
from embedsearch.progress import NullProgress, Progress
from embedsearch.train import distributed as dist_utils
from embedsearch.train.checkpoint import load_checkpoint, save_checkpoint, set_rng_state
from embedsearch.train.estimate import LOG_FILE, RunClock
from embedsearch.train.metrics import append_metrics, plot_metrics, read_metrics, truncate_metrics
from embedsearch.train.optim import build_optimizer, split_decay_groups, warmup_cosine
from embedsearch.train.sampler import EpochSampler
from embedsearch.train.sync_bn import convert_sync_batchnorm
from embedsearch.train.task import (
    RunExport,
    TrainConfig,
    TrainingInterrupted,
    TrainSummary,
    TrainTask,
)

# The protocol types live in .task; importing them from here is the documented way.
__all__ = ["RunExport", "TrainConfig", "TrainSummary", "TrainTask", "TrainingInterrupted", "train"]


class _StopFlag:
    """SIGINT sets a flag so the current step finishes; a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


@dataclass
class _State:
    """Position in training; saved in the checkpoint."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    loss_sum: float = 0.0
    images: int = 0
    seconds: float = 0.0


def train(
    task: TrainTask,
    config: TrainConfig,
    progress: Progress | None = None,
    notify: Callable[[str], None] | None = None,
) -> TrainSummary:
    """Run ``task`` under ``config``; writes the run dir to ``config.out``.

    ``notify`` gets plain lines meant for a person: the estimate of the whole run once its
    first steps are timed, then one line per epoch (loss, seconds, time left). The same lines
    are appended to ``config.out/train.log``, so a run in the background can be followed there.

    Example:
        >>> train(SimCLRTask(...), TrainConfig(out=Path("runs/a"), epochs=5))   # doctest: +SKIP
    """
    runner = _Runner(task, config, progress or NullProgress(), notify)
    return runner.run()


class _Runner:
    """Holds the live training objects of one :func:`train` call."""

    def __init__(
        self,
        task: TrainTask,
        config: TrainConfig,
        progress: Progress,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.task, self.cfg, self.out = task, config, Path(config.out)
        self.notify = notify
        self.device = resolve_device(config.device)
        if dist_utils.init_distributed(self.device) and self.device.type == "cuda":
            self.device = torch.device("cuda", dist_utils.local_rank())
            torch.cuda.set_device(self.device)
        _check_config(config)
        self.main = dist_utils.is_main_process()
        self.progress = progress if self.main else NullProgress()
        if config.threads:
            torch.set_num_threads(config.threads)
        self.precision = resolve_precision(config.precision, self.device)
        self.channels_last = (
            self.device.type == "cuda" if config.channels_last is None else config.channels_last
        )
        torch.manual_seed(config.seed)
        self.dataset = task.dataset()
        self.dataset_size = len(cast(Sized, self.dataset))
        self.steps_per_epoch = self.dataset_size // config.batch_size
        if self.steps_per_epoch < 1:
            raise InputError(
                f"only {self.dataset_size} training samples, "
                f"fewer than one batch of {config.batch_size}: "
                "add data or lower --batch-size"
            )
        self._build_model()
        self.clock = RunClock(config.epochs * self.steps_per_epoch, self.steps_per_epoch)
        self.state = _State()
        if config.resume:
            self._resume()

    def _build_model(self) -> None:
        cfg = self.cfg
        model = self.task.build_model()
        if cfg.init is not None:
            self.task.load_init(model, Path(cfg.init))
        if cfg.sync_bn and dist_utils.is_distributed():
            model = convert_sync_batchnorm(model, self.device)
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model
        lr = cfg.lr if cfg.lr is not None else self.task.default_lr(cfg.optimizer, cfg.batch_size)
        self.lr = lr
        groups = split_decay_groups(model, cfg.weight_decay, self.task.exclude_from_decay)
        self.optimizer = build_optimizer(cfg.optimizer, groups, lr)
        total = cfg.epochs * self.steps_per_epoch
        warmup = min(total // 2, round(cfg.warmup_epochs * self.steps_per_epoch))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(warmup, total)
        )
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.precision == torch.float16
        )
        self.wrapped: nn.Module = model
        if dist_utils.is_distributed():
            ids = [self.device] if self.device.type == "cuda" else None
            self.wrapped = DistributedDataParallel(model, device_ids=ids)

    def _resume(self) -> None:
        ckpt = load_checkpoint(self.out)
        if ckpt.get("batch_size") != self.cfg.batch_size:
            raise InputError(
                f"--resume: the checkpoint was trained with --batch-size {ckpt.get('batch_size')}; "
                f"use the same batch size (got {self.cfg.batch_size})"
            )
        try:
            self.model.load_state_dict(ckpt["model"])
        except (
            RuntimeError
        ) as e:  # another architecture, or a head one side trains and not the other
            raise InputError(
                f"--resume: the checkpoint in {self.out} holds another model than this run "
                f"builds; resume with the --model and objective options it was started with "
                f"(such as --word-loss): {str(e)[:200]}"
            ) from e
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.state = _State(**ckpt["position"])
        self._rng = ckpt["rng"]
        if self.state.epoch >= self.cfg.epochs:
            raise InputError(
                f"--resume: {self.out} already finished {self.state.epoch} epochs; "
                f"pass a larger --epochs to train further"
            )
        if self.main:
            truncate_metrics(self.out, self.state.epoch)

    def run(self) -> TrainSummary:
        cfg, state = self.cfg, self.state
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
        if cfg.resume:
            set_rng_state(self._rng)  # last, so that setup cannot consume random numbers
        started = time.perf_counter()
        stop = _StopFlag()
        stop.install()
        try:
            while state.epoch < cfg.epochs:
                self._run_epoch(stop)
                self._end_epoch()
        finally:
            stop.restore()
        self.progress.stop()
        records = read_metrics(self.out) if self.main else []
        return TrainSummary(
            out=self.out,
            epochs=state.epoch,
            steps=state.global_step,
            images=sum(r["images"] for r in records),
            seconds=time.perf_counter() - started,
            loss=records[-1]["loss"] if records else math.nan,
            metrics=records,
        )

    def _loader(self) -> DataLoader:
        cfg, world = self.cfg, dist_utils.world_size()
        micro = cfg.batch_size // world // cfg.accumulate
        sampler = EpochSampler(
            self.dataset_size, cfg.batch_size, cfg.seed, self.state.epoch, self.state.step_in_epoch
        )
        workers = default_training_workers(self.device.type) if cfg.workers is None else cfg.workers
        return DataLoader(
            self.dataset,
            batch_size=micro,
            sampler=sampler,
            num_workers=workers,
            collate_fn=self.task.collate_fn,
            pin_memory=self.device.type == "cuda",
            drop_last=True,
            worker_init_fn=worker_init,
            # An explicit generator keeps worker seeding from consuming the global RNG.
            generator=torch.Generator().manual_seed(cfg.seed),
            prefetch_factor=4 if workers else None,
        )

    def _run_epoch(self, stop: _StopFlag) -> None:
        cfg, state = self.cfg, self.state
        self.model.train()
        records = read_metrics(self.out) if self.main else []
        last = records[-1]["loss"] if records else None
        label = f"epoch {state.epoch + 1}/{cfg.epochs}" + (f" (loss {last:.3f})" if last else "")
        self.progress.start(label, self.steps_per_epoch * cfg.batch_size)
        self.progress.advance(state.step_in_epoch * cfg.batch_size)
        batches = iter(self._loader())
        tic = time.perf_counter()
        in_step = False
        try:
            while state.step_in_epoch < self.steps_per_epoch:
                in_step = True
                loss, items = self._step(batches)
                in_step = False
                state.step_in_epoch += 1
                state.global_step += 1
                state.loss_sum += loss
                state.images += items * dist_utils.world_size()
                self.progress.advance(cfg.batch_size)
                estimate = self.clock.step_done(state.global_step)
                if estimate:
                    self._say(estimate)
                if stop.requested:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            state.seconds += time.perf_counter() - tic
            raise TrainingInterrupted(None if in_step else self._save_checkpoint()) from None
        state.seconds += time.perf_counter() - tic

    def _step(self, batches: Any) -> tuple[float, int]:
        """One optimiser step over ``accumulate`` micro-batches; returns (loss, samples)."""
        cfg = self.cfg
        total_loss, items = 0.0, 0
        for micro in range(cfg.accumulate):
            batch = _to_device(next(batches), self.device, self.channels_last)
            items += self.task.batch_items(batch)
            ddp = self.wrapped if isinstance(self.wrapped, DistributedDataParallel) else None
            # Only the last micro-batch of a step syncs gradients across ranks.
            defer = ddp.no_sync() if ddp and micro < cfg.accumulate - 1 else None
            with defer or contextlib.nullcontext(), self._autocast():
                loss = self.task.loss(self.wrapped, batch) / cfg.accumulate
            if not torch.isfinite(loss):
                raise ModelError(
                    f"training diverged: loss is {loss.item()} at step {self.state.global_step}; "
                    "lower --lr or use --precision fp32"
                )
            self.scaler.scale(loss).backward()
            total_loss += float(loss.detach())
        self.last_lr = self.optimizer.param_groups[0]["lr"]  # the rate this step used, for metrics
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return total_loss, items

    def _autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.device, self.precision)

    def _end_epoch(self) -> None:
        state = self.state
        loss = dist_utils.all_reduce_mean(state.loss_sum / max(1, state.step_in_epoch), self.device)
        record: dict[str, Any] = {
            "epoch": state.epoch + 1,
            "step": state.global_step,
            "loss": round(loss, 6),
            "lr": getattr(self, "last_lr", self.optimizer.param_groups[0]["lr"]),
            "images": state.images,
            "seconds": round(state.seconds, 3),
            "images_per_s": round(state.images / max(state.seconds, 1e-9), 2),
            **self.task.epoch_stats(),
        }
        if self.main:
            self.model.eval()
            with self._autocast():
                record.update(
                    {f"eval_{k}": v for k, v in self.task.evaluate(self.model, self.device).items()}
                )
            self.model.train()
        state.epoch += 1
        state.step_in_epoch, state.loss_sum, state.images, state.seconds = 0, 0.0, 0, 0.0
        self._say(self.clock.epoch_line(record, self.cfg.epochs))
        if self.main:
            append_metrics(self.out, record)
            plot_metrics(self.out)
            self._save_run_dir()
            self._save_checkpoint()
        dist_utils.barrier()

    def _say(self, line: str) -> None:
        """A line for the person running this: to ``notify`` and appended to ``train.log``."""
        if not self.main:
            return
        with open(self.out / LOG_FILE, "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
        if self.notify is not None:
            self.notify(line)

    def _save_run_dir(self) -> None:
        export = self.task.export(self.model)
        training = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self.cfg).items()}
        losses = [r["loss"] for r in read_metrics(self.out)]  # written just before
        training.update(
            lr=self.lr,
            epochs_done=self.state.epoch,
            world_size=dist_utils.world_size(),
            # what `embed`/`query` read to say that a run has barely trained
            loss_first=losses[0] if losses else None,
            loss_last=losses[-1] if losses else None,
            **self.task.recipe(),
        )
        config = replace(export.config, training=training)
        save_run_dir(self.out, config, export.state_dict, export.extra_tensors)

    def _save_checkpoint(self) -> Path | None:
        if not self.main:
            return None
        return save_checkpoint(
            self.out,
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "position": asdict(self.state),
                "batch_size": self.cfg.batch_size,
            },
        )


def _check_config(cfg: TrainConfig) -> None:
    if cfg.epochs < 1 or cfg.batch_size < 2 or cfg.accumulate < 1:
        raise InputError("--epochs must be >= 1, --batch-size >= 2 and --accumulate >= 1")
    parts = dist_utils.world_size() * cfg.accumulate
    if cfg.batch_size % parts:
        raise InputError(
            f"--batch-size {cfg.batch_size} must split evenly over "
            f"{dist_utils.world_size()} rank(s) "
            f"x {cfg.accumulate} accumulation step(s)"
        )


def _to_device(batch: Any, device: torch.device, channels_last: bool) -> Any:
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.ndim == 4 and batch.is_floating_point():
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, device, channels_last) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device, channels_last) for k, v in batch.items()}
    return batch
