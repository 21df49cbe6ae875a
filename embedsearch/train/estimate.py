"""How long a training run will take, said early: timed from its first steps, then per epoch.

The first step of a process is slow (kernel selection, the loader starting), so the estimate
times the :data:`MEASURED_STEPS` after it and multiplies by the steps left. Each epoch's line
re-estimates from that epoch's own rate, so a machine that gets busier shows up at once.

Example:
    >>> ticks = iter([10.0, 11.0, 12.0, 13.0, 14.0])
    >>> clock = RunClock(total_steps=100, steps_per_epoch=10, clock=ticks.__next__)
    >>> [clock.step_done(n) for n in range(1, 5)]
    [None, None, None, None]
    >>> clock.step_done(5)  # doctest: +ELLIPSIS
    'estimate: 1.7 min for the 100 steps of this run (95 left at 1.0 s/step), done around ...'
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

LOG_FILE = "train.log"
MEASURED_STEPS = 4


def duration(seconds: float) -> str:
    """``42 s``, ``3.5 min`` or ``2.1 h``.

    Example:
        >>> duration(42), duration(210), duration(7560)
        ('42 s', '3.5 min', '2.1 h')
    """
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class RunClock:
    """Times the steps of one :func:`~embedsearch.train.loop.train` call and words estimates."""

    def __init__(
        self,
        total_steps: int,
        steps_per_epoch: int,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.total, self.per_epoch, self._clock = total_steps, steps_per_epoch, clock
        self._calls = 0
        self._first = 0.0

    def step_done(self, global_step: int) -> str | None:
        """Call after every step; returns the estimate once, after the first timed steps."""
        self._calls += 1
        now = self._clock()
        if self._calls == 1:
            self._first = now  # the slow first step is left out of the rate
            return None
        if self._calls != 1 + MEASURED_STEPS:
            return None
        per_step = (now - self._first) / MEASURED_STEPS
        left = max(0, self.total - global_step)
        return (
            f"estimate: {duration(per_step * self.total)} for the {self.total} steps of this run "
            f"({left} left at {per_step:.1f} s/step), done around {_clock_time(per_step * left)}"
        )

    def epoch_line(self, record: dict[str, Any], epochs: int) -> str:
        """One line for a finished epoch: loss, its seconds, and the time left at its rate.

        Example:
            >>> RunClock(100, 10).epoch_line({"epoch": 4, "loss": 4.25, "seconds": 12.0}, 10)
            'epoch 4/10: loss 4.250, 12 s; 72 s left'
        """
        left = (epochs - int(record["epoch"])) * float(record["seconds"])
        line = f"epoch {record['epoch']}/{epochs}: loss {record['loss']:.3f}, "
        return line + f"{duration(float(record['seconds']))}; {duration(left)} left"


def _clock_time(seconds_from_now: float) -> str:
    return time.strftime("%H:%M", time.localtime(time.time() + seconds_from_now))
