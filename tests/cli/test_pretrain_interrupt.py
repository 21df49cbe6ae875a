"""Ctrl-C during `pretrain simclr|clip`: exit 130 naming the checkpoint to --resume from."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedsearch.train.loop import TrainingInterrupted


@pytest.mark.parametrize(
    ("command", "module", "function"),
    [
        ("simclr", "embedsearch.train.simclr", "pretrain_simclr"),
        ("clip", "embedsearch.train.clip", "pretrain_clip"),
    ],
)
def test_interrupted_training_exits_130_naming_its_checkpoint(
    run_cli, monkeypatch, tmp_path: Path, command: str, module: str, function: str
) -> None:
    checkpoint = tmp_path / "run" / "checkpoint"

    def interrupted(*args, **kwargs):
        raise TrainingInterrupted(checkpoint)

    monkeypatch.setattr(f"{module}.{function}", interrupted)
    result = run_cli("pretrain", command, tmp_path, "--out", tmp_path / "run")
    said = " ".join(result.stderr.split())  # rich wraps long lines
    assert (result.exit_code, said) == (
        130,
        f"interrupted: checkpoint saved to {checkpoint}; continue with --resume",
    )
