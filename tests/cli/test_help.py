"""``--help`` answers without importing torch, faiss or open_clip."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "faiss", "open_clip", "torchvision", "pyarrow", "numpy")
PROBE = """
import sys
from embedsearch.cli.app import main
try:
    main({argv!r})
except SystemExit:
    pass
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print("HEAVY:" + ",".join(heavy))
"""


def _help_imports(argv: list[str]) -> tuple[str, list[str]]:
    code = PROBE.format(argv=argv, heavy=HEAVY)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    line = [x for x in result.stdout.splitlines() if x.startswith("HEAVY:")][-1]
    return result.stdout, [m for m in line[len("HEAVY:") :].split(",") if m]


def _commands() -> list[str]:
    from embedsearch.cli.app import _register_commands, app

    _register_commands()
    names = [c.name for c in app.registered_commands]
    names += [g.name for g in app.registered_groups]
    return sorted(n for n in names if n)


def test_root_help_lists_commands_without_heavy_imports() -> None:
    out, heavy = _help_imports(["--help"])
    assert heavy == []
    for name in _commands():
        assert name in out


@pytest.mark.parametrize("command", _commands())
def test_every_command_help_is_light(command: str) -> None:
    out, heavy = _help_imports([command, "--help"])
    assert "Usage" in out
    assert heavy == []


@pytest.mark.parametrize(
    "argv, choices",
    [
        (["embed", "--help"], "auto|cpu|cuda"),
        (["embed", "--help"], "image|text"),
        (["pretrain", "simclr", "--help"], "lars|sgd|adamw"),
        (["pretrain", "simclr", "--help"], "resnet18|resnet34|resnet50"),
        (["pretrain", "clip", "--help"], "auto|fp32|bf16|fp16"),
    ],
)
def test_help_lists_the_choices_of_an_option(argv: list[str], choices: str) -> None:
    out, _ = _help_imports(argv)
    assert choices in out.replace(" ", "").replace("\n", "")


def test_a_choice_outside_the_list_is_bad_usage(run_cli, tmp_path) -> None:
    result = run_cli(
        "embed", tmp_path, "--model", "tiny", "--out", tmp_path / "o", "--device", "gpu"
    )
    assert result.exit_code == 2
    assert "gpu" in result.stderr
