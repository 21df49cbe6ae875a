"""Fixtures shared by the training tests."""

from __future__ import annotations

import os
import signal

import pytest


class CtrlCAfter:
    """Progress that sends this process a real SIGINT after ``steps`` training steps."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def start(self, description: str, total: int | None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        if n:
            self.steps -= 1
            if self.steps == 0:
                os.kill(os.getpid(), signal.SIGINT)

    def stop(self) -> None:
        pass


@pytest.fixture
def ctrl_c_after() -> type[CtrlCAfter]:
    """:class:`CtrlCAfter` (a Progress that presses Ctrl-C after N steps), as a fixture."""
    return CtrlCAfter
