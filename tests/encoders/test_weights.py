"""Weights are never unpickled: a checkpoint with a malicious __reduce__ does not run."""

from __future__ import annotations

import pickle

import pytest
import torch

from embedsearch.encoders import load_encoder
from embedsearch.encoders.weights import load_weights_file
from embedsearch.errors import ModelError


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        # Unpickling this would create the marker file.
        return (open, (self.marker, "w"))


def _malicious_checkpoint(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save(
        {"state_dict": {"w": torch.zeros(1)}, "extra": _Payload(str(marker))},
        path,
        pickle_module=pickle,
    )
    return path, marker


def test_malicious_pickle_is_refused_and_not_executed(tmp_path) -> None:
    path, marker = _malicious_checkpoint(tmp_path)
    with pytest.raises(ModelError, match="refused to load"):
        load_weights_file(path)
    assert not marker.exists()


def test_malicious_pickle_given_as_openclip_weights_is_refused(tmp_path) -> None:
    path, marker = _malicious_checkpoint(tmp_path)
    with pytest.raises(ModelError, match="refused to load"):
        load_encoder(f"openclip:tiny-clip/{path}")
    assert not marker.exists()


def test_plain_tensor_checkpoint_loads_and_is_unwrapped(tmp_path) -> None:
    path = tmp_path / "ok.pt"
    torch.save({"state_dict": {"module.w": torch.ones(2)}}, path)
    assert torch.equal(load_weights_file(path)["w"], torch.ones(2))
