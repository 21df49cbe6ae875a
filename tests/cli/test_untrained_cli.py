"""Issue 17 item 2: an untrained model is announced in one line by `embed`, `index` and `query`,
and recorded in the manifest and index.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

LINE = "warning: tiny-clip is untrained (random weights)"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, str]:
    """An embedding dir and an index of tiny-clip vectors, and the stderr of each command."""
    import contextlib
    import io

    from PIL import Image

    from embedsearch.cli.app import main

    root = tmp_path_factory.mktemp("untrained")
    for i in range(4):
        Image.new("RGB", (40, 40), (60 * i, 20, 200 - 40 * i)).save(root / f"p{i}.png")
    said = {"root": str(root)}
    steps = {
        "embed": ["embed", root, "--model", "tiny-clip", "-o", root / "emb"],
        "index": ["index", root / "emb", "-o", root / "index"],
        "query": ["query", root / "index", "--text", "a red square", "--format", "json"],
    }
    for name, args in steps.items():
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                main([str(a) for a in args])
            except SystemExit as e:
                assert not e.code, err.getvalue()
        said[name] = err.getvalue()
    return said


@pytest.mark.parametrize("command", ["embed", "index", "query"])
def test_command_with_an_untrained_model_warns_in_one_line(built, command) -> None:
    assert [line for line in built[command].splitlines() if line.startswith(LINE)] != []


@pytest.mark.parametrize("command", ["embed", "index", "query"])
def test_the_warning_is_said_once(built, command) -> None:
    assert built[command].count(LINE) == 1


def test_manifest_records_the_model_untrained(built) -> None:
    manifest = Path(built["root"]) / "emb" / ".embedsearch" / "manifest.json"
    assert json.loads(manifest.read_text())["model_trained"] is False


def test_index_records_the_model_untrained(built) -> None:
    info = Path(built["root"]) / "index" / "index.json"
    assert json.loads(info.read_text())["model_trained"] is False


def test_embed_help_names_the_untrained_specs(run_cli) -> None:
    shown = " ".join(run_cli("embed", "--help").stdout.split())
    assert "untrained (random weights, hits mean nothing): simclr:ARCH" in shown
