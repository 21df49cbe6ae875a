"""Shell completion (Typer's): scripts for the shells, and commands complete (issue 12.4)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

RUN_AS_EMBEDSEARCH = (
    "import sys; sys.argv[0] = 'embedsearch'; from embedsearch.cli.app import main; main()"
)


def run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", RUN_AS_EMBEDSEARCH, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_show_completion_prints_a_bash_script() -> None:
    # Typer finds the shell by walking up the parent processes (shellingham), as when a user types
    # the command: run it from bash, not straight from pytest (whose parents may be no shell).
    command = (
        f"{shlex.quote(sys.executable)} -c {shlex.quote(RUN_AS_EMBEDSEARCH)} --show-completion"
    )
    result = subprocess.run(
        ["bash", "-c", f"{command}; true"], capture_output=True, text=True, timeout=60, check=False
    )
    assert "_EMBEDSEARCH_COMPLETE=complete_bash" in result.stdout


def test_install_completion_is_an_option() -> None:
    assert "--install-completion" in run(["--help"]).stdout


def test_a_command_name_completes() -> None:
    env = {
        "_EMBEDSEARCH_COMPLETE": "complete_bash",
        "COMP_WORDS": "embedsearch inf",
        "COMP_CWORD": "1",
    }
    assert run([], env).stdout.split() == ["info"]
