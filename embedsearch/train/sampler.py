"""Which samples each rank sees in each epoch, and with which augmentation seed.

Keys are ``(index, item_seed)``: the permutation depends only on (run seed, epoch) and
the item seed on (run seed, epoch, index), so an epoch is reproducible from any step
(mid-epoch resume), with any number of DataLoader workers, and split over any number
of ranks.
"""

from __future__ import annotations

import torch
from torch.utils.data import Sampler

from embedsearch.train import distributed as dist_utils


class EpochSampler(Sampler):
    """This rank's ``(index, item_seed)`` keys of one epoch, from step ``skip_steps`` on.

    Each global batch of ``batch_size`` shuffled indices is cut into one contiguous
    share per rank, so N ranks see exactly the samples (and augmentations) one process
    would. Dropping the ragged tail keeps every step's batch full.
    """

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int, skip_steps: int = 0) -> None:
        self.keys = epoch_keys(
            n, batch_size, seed, epoch, dist_utils.rank(), dist_utils.world_size()
        )
        self.keys = self.keys[skip_steps * (batch_size // dist_utils.world_size()) :]

    def __iter__(self):
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)


def epoch_keys(
    n: int, batch_size: int, seed: int, epoch: int, rank: int, world: int
) -> list[tuple[int, int]]:
    """The ``(index, item_seed)`` keys rank ``rank`` of ``world`` visits in ``epoch``."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=generator)[: (n // batch_size) * batch_size].tolist()
    share = batch_size // world
    keys = []
    for start in range(0, len(order), batch_size):
        for index in order[start + rank * share : start + (rank + 1) * share]:
            keys.append((index, ((seed * 1_000_003 + epoch) * 10_000_019 + index) % (2**62)))
    return keys
