"""``build_in_shards``: the three steps of :mod:`~embedsearch.index.shards` in one call, under
torchrun (each rank one shard) or in one process (every shard in turn: memory bounded by a
block, not by the index).

Under ``torchrun --nnodes M --nproc-per-node P ... -m embedsearch index ...`` rank 0 trains
(unless the shards dir already holds a plan made with the same sources and options), every
rank adds its shard, and rank 0 merges once all are done. Finished shards are kept across
reruns, so rerunning the same command after a crash redoes only the unfinished shards.

Example:
    >>> build_in_shards(["emb/"], "indexes/big", num_shards=4).info.storage   # doctest: +SKIP
    'ondisk'
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from embedsearch.choices import CentreMode, Device
from embedsearch.errors import InputError
from embedsearch.index import layout
from embedsearch.index.finish import BuildSummary
from embedsearch.index.merge import merge_shards
from embedsearch.index.plan import Kind
from embedsearch.index.shards import (
    BLOCK_BYTES,
    PLAN_FILE,
    ShardPlan,
    ShardRecord,
    add_shard,
    request_of,
    shards_dir_of,
    train_shards,
)
from embedsearch.progress import NullProgress, Progress

# Ranks wait for rank 0's training and merge at barriers: allow builds of many hours.
BARRIER_TIMEOUT = timedelta(hours=24)


def torchrun_rank() -> tuple[int, int] | None:
    """(rank, world size) when launched by torchrun (its environment), else None.

    Example:
        >>> torchrun_rank() is None or torchrun_rank()[1] >= 1
        True
    """
    if "TORCHELASTIC_RUN_ID" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    return int(os.environ.get("RANK", "0")), int(os.environ["WORLD_SIZE"])


def build_in_shards(
    sources: Sequence[str | Path] | str | Path,
    out: str | Path,
    *,
    num_shards: int | None = None,
    rank: int | None = None,
    overwrite: bool = False,
    block_bytes: int = BLOCK_BYTES,
    progress: Progress | None = None,
    kind: Kind = "auto",
    max_memory: str | int | None = None,
    target_recall: float = 0.95,
    k: int = 10,
    device: Device = "auto",
    seed: int = 0,
    centre: CentreMode = "no",
) -> BuildSummary | ShardRecord:
    """Train, add every shard, merge. ``rank`` given (torchrun): this process adds shard ``rank``
    of ``num_shards`` and only rank 0 trains and merges (returning the :class:`BuildSummary`;
    the other ranks return their :class:`ShardRecord`). The other options mean what they mean
    for :func:`~embedsearch.index.build.build_index`."""
    progress = progress or NullProgress()
    options: dict[str, Any] = {"kind": kind, "max_memory": max_memory}
    options |= {"target_recall": target_recall, "k": k, "device": device, "seed": seed}
    options["centre"] = centre
    paths = [sources] if isinstance(sources, (str, Path)) else list(sources)
    out = Path(out).expanduser().resolve()
    if num_shards is None or num_shards < 1:
        raise InputError(f"--num-shards must be at least 1, got {num_shards}")
    layout.check_out_dir(out, overwrite)  # before hours of work, not after
    group = _ProcessGroup() if rank is not None else None
    try:
        if rank in (None, 0) and not _trained_for(out, paths, options):
            train_shards(paths, out, overwrite=overwrite, progress=progress, **options)
        if group is not None:
            group.barrier()
        mine = range(num_shards) if rank is None else [rank]
        records = [
            add_shard(
                out,
                shard_index=i,
                num_shards=num_shards,
                block_bytes=block_bytes,
                progress=progress,
            )
            for i in mine
        ]
        if group is not None:
            group.barrier()
        if rank in (None, 0):
            return merge_shards(out, overwrite=overwrite, progress=progress)
        return records[0]
    finally:
        if group is not None:
            group.close()


def _trained_for(out: Path, paths: list[str | Path], options: dict[str, Any]) -> bool:
    """Whether ``OUT.shards`` holds a plan trained from these sources with these options."""
    plan_file = shards_dir_of(out) / PLAN_FILE
    if not plan_file.is_file():
        return False
    try:
        plan = ShardPlan.read(plan_file)
    except Exception:  # an unreadable plan is trained again
        return False
    return plan.request == request_of(paths, options)


class _ProcessGroup:
    """torchrun's process group (gloo: the barriers move no tensors), joined if not yet."""

    def __init__(self) -> None:
        import torch.distributed as dist

        self.dist = dist
        self.joined = not dist.is_initialized()
        if self.joined:
            dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)

    def barrier(self) -> None:
        self.dist.barrier()

    def close(self) -> None:
        if self.joined and self.dist.is_initialized():
            self.dist.destroy_process_group()
