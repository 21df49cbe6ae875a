"""Files the package writes respect the umask, like any other program's (issue 12, item 4)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from embedsearch.atomic import write_json_atomic
from embedsearch.store import write_embedding_dir


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_json_written_atomically_is_0644_under_umask_022(tmp_path, umask_022) -> None:
    write_json_atomic(tmp_path / "index.json", {"a": 1})
    assert _mode(tmp_path / "index.json") == 0o644


def test_manifest_is_0644_under_umask_022(tmp_path, umask_022) -> None:
    d = write_embedding_dir(tmp_path / "e", np.eye(3, dtype=np.float32), model="m")
    assert _mode(d.path / ".embedsearch" / "manifest.json") == 0o644


def test_run_dir_weights_and_config_are_0644_under_umask_022(tmp_path, umask_022) -> None:
    from embedsearch.encoders import load_encoder
    from embedsearch.encoders.rundir import save_run_dir

    encoder = load_encoder("simclr:resnet18", image_size=32)
    save_run_dir(tmp_path / "run", encoder.config, encoder.model.state_dict())
    modes = {p.name: _mode(p) for p in (tmp_path / "run").iterdir()}
    assert modes == {"config.json": 0o644, "model.safetensors": 0o644}
