"""``openclip:local-dir:DIR``: a bad folder or a code-running pickle is one line, never run."""

from __future__ import annotations

import json
import os

import pytest
import torch


class _Payload:
    """Unpickling this runs ``touch MARKER``: what a malicious checkpoint does."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def pickled_dir(tmp_path):
    from embedsearch.encoders.openclip import shipped_config

    folder = tmp_path / "clip"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": shipped_config("tiny-clip")})
    )
    torch.save(
        {"weights": _Payload(str(tmp_path / "PWNED"))}, folder / "open_clip_pytorch_model.bin"
    )
    return folder


def test_pickle_payload_is_refused_in_one_line(pickled_dir, tmp_path, run_cli) -> None:
    result = run_cli(
        "embed", tmp_path, "--model", f"openclip:local-dir:{pickled_dir}", "--out", tmp_path / "e"
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"error: refused to load {pickled_dir}/open_clip_pytorch_model.bin"
    )
    assert len(result.stderr.strip().splitlines()) == 1


def test_pickle_payload_never_runs(pickled_dir, tmp_path, run_cli) -> None:
    run_cli(
        "embed", tmp_path, "--model", f"openclip:local-dir:{pickled_dir}", "--out", tmp_path / "e"
    )
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize(
    "config, message",
    [
        (None, "cannot read"),
        ("not json", "cannot read"),
        ('{"model_cfg": 3}', "has no 'model_cfg' object"),
    ],
)
def test_bad_local_dir_config_is_one_line(tmp_path, run_cli, config, message) -> None:
    folder = tmp_path / "clip"
    folder.mkdir()
    if config is not None:
        (folder / "open_clip_config.json").write_text(config)
    result = run_cli(
        "embed", tmp_path, "--model", f"openclip:local-dir:{folder}", "--out", tmp_path / "e"
    )
    assert result.exit_code == 2
    assert message in result.stderr
