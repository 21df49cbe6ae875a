"""Progress on a stderr that is not a terminal: a line every few seconds (issue 12.4)."""

from __future__ import annotations

import io

from embedsearch.progress import LineProgress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_many_updates_within_the_interval_write_one_line() -> None:
    out, clock = io.StringIO(), Clock()
    progress = LineProgress(out, interval=5.0, clock=clock)
    progress.start("embed", 1000)
    for i in range(1000):
        clock.now = (i + 1) * 0.004  # 1000 updates in 4 s
        progress.advance()
    progress.stop()
    assert out.getvalue().splitlines() == ["embed: 1000/1000 (250.0/s)"]


def test_a_line_every_interval_while_work_goes_on() -> None:
    out, clock = io.StringIO(), Clock()
    progress = LineProgress(out, interval=5.0, clock=clock)
    progress.start("embed", None)
    for i in range(1, 31):
        clock.now = float(i)  # 30 s, one update a second
        progress.advance()
    assert len(out.getvalue().splitlines()) == 6


def test_cli_progress_is_plain_lines_when_stderr_is_not_a_terminal(run_cli, tmp_path) -> None:
    from PIL import Image
    from skimage import data as skdata

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(skdata.chelsea()).save(folder / f"{i}.png")
    result = run_cli(
        "embed",
        folder,
        "--model",
        "simclr:resnet18",
        "--image-size",
        "32",
        "--out",
        tmp_path / "emb",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0
    assert "\x1b[" not in result.stderr and "━" not in result.stderr
