"""DataLoader worker policies: none on small CPUs (they preempt the model), several on CUDA."""

from __future__ import annotations

import pytest

from embedsearch.data import workers


@pytest.mark.parametrize(
    ("cores", "device", "inference", "training"),
    [
        (2, "cpu", 0, 0),  # measured on 2 cores: a worker costs more than it overlaps
        (16, "cpu", 0, 4),  # training augments two views per image: one worker per 4 cores
        (64, "cpu", 0, 8),
        (2, "cuda", 1, 1),
        (16, "cuda", 8, 8),
    ],
)
def test_worker_policy_follows_cores_and_device(monkeypatch, cores, device, inference, training):
    monkeypatch.setattr(workers, "available_cores", lambda: cores)
    assert workers.default_workers(device) == inference
    assert workers.default_training_workers(device) == training
