"""Ctrl-C during `embed`: exit 130 with its message, committed rows kept (issue 18, item 10)."""

from __future__ import annotations

import embedsearch.embedding


def _interrupted(*args, **kwargs):
    raise KeyboardInterrupt


def test_ctrl_c_says_interrupted(tmp_path, run_cli, monkeypatch, image_folder) -> None:
    monkeypatch.setattr(embedsearch.embedding, "embed", _interrupted)
    result = run_cli("embed", image_folder, "--out", tmp_path / "emb", "--model", "simclr:resnet18")
    # before: click's "Aborted!" path printed an empty line first and no message of ours
    assert result.stderr.startswith("interrupted: committed rows are kept")
