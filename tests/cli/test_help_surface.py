"""The surface a newcomer meets first: --version, examples in every --help, whole command
descriptions at 80 columns, -o wherever --out is."""

from __future__ import annotations

import re

import pytest


def _leaf_commands() -> list[list[str]]:
    """Every runnable command as its argv path (``["pretrain", "clip"]``, ``["query"]``...)."""
    from embedsearch.cli.app import _register_commands, app

    _register_commands()
    paths = [[c.name] for c in app.registered_commands if c.name]
    for group in app.registered_groups:
        assert group.typer_instance is not None and group.name is not None
        paths += [[group.name, c.name] for c in group.typer_instance.registered_commands if c.name]
    return sorted(paths)


def _click_commands() -> list[tuple[str, object]]:
    import typer

    from embedsearch.cli.app import _register_commands, app

    _register_commands()
    root = typer.main.get_command(app)
    found = []

    def walk(command, path: str) -> None:
        children = getattr(command, "commands", None)
        if children:
            for name, child in children.items():
                walk(child, f"{path} {name}".strip())
        else:
            found.append((path, command))

    walk(root, "")
    return found


def test_version_prints_the_package_version(run_cli) -> None:
    from embedsearch import __version__

    result = run_cli("--version")
    assert (result.exit_code, result.stdout.strip()) == (0, f"embedsearch {__version__}")


@pytest.mark.parametrize("path", _leaf_commands(), ids=" ".join)
def test_every_command_help_ends_with_examples_of_itself(run_cli, path) -> None:
    out = run_cli(*path, "--help").stdout
    examples = out.split("Examples:", 1)[-1]
    assert re.search(rf"^\s+embedsearch {' '.join(path)} ", examples, re.MULTILINE)


def test_root_help_keeps_whole_command_descriptions_at_80_columns(run_cli, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    out = run_cli("--help").stdout
    commands = out.split("Commands:", 1)[1]
    assert "..." not in commands
    assert "write keep/remove lists." in " ".join(commands.split())


def test_group_help_keeps_whole_command_descriptions_at_80_columns(run_cli, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    commands = run_cli("pretrain", "--help").stdout.split("Commands:", 1)[1]
    assert "..." not in commands


def test_every_out_option_also_answers_to_dash_o() -> None:
    lacking = [
        path
        for path, command in _click_commands()
        for param in command.params
        if "--out" in param.opts and "-o" not in param.opts
    ]
    assert lacking == []
