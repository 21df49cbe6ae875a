"""Process settings: the CLI asks PyTorch for huge pages before torch loads; an opt-out is kept."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from embedsearch import runtime

# Runs the real console entry point (``--help`` imports no torch), then reports what torch would
# read.
PROBE = (
    "import os, sys\n"
    "from embedsearch.cli.app import main\n"
    "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
    "print('torch loaded' if 'torch' in sys.modules else 'torch not loaded',"
    " os.environ.get('THP_MEM_ALLOC_ENABLE'))\n"
)


@pytest.mark.parametrize(("preset", "expected"), [(None, "1"), ("0", "0")])
def test_cli_enables_huge_pages_before_torch_unless_opted_out(
    preset: str | None, expected: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k != runtime.HUGE_PAGES_ENV}
    if preset is not None:
        env[runtime.HUGE_PAGES_ENV] = preset
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == f"torch not loaded {expected}"


def test_too_late_once_torch_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch  # noqa: F401  (the test process has it; the setting can no longer take effect)

    monkeypatch.delenv(runtime.HUGE_PAGES_ENV, raising=False)
    assert runtime.prefer_huge_pages() is False
    assert runtime.HUGE_PAGES_ENV not in os.environ
