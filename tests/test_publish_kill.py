"""A kill at any point of publishing an index dir leaves a complete index at the path, and the
next command removes the hidden leftovers of dead writers (each a full-size copy)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from embedsearch.atomic import exchange_dirs, publish_dir, recover_dir, staging_dir

# Publishes staged dir NEW over OLD in a child process that dies (os._exit) at the chosen call.
KILL_AT = textwrap.dedent(
    """
    import os, shutil, sys
    from pathlib import Path
    from embedsearch import atomic
    out, point, exchange = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
    staged = atomic.staging_dir(out)
    (staged / "version").write_text("new")
    if not exchange:
        atomic.exchange_dirs = lambda a, b: False
    real_rename = os.rename
    renames = []
    def rename(a, b):
        renames.append(a)
        if point == f"before-rename-{len(renames)}":
            os._exit(9)
        real_rename(a, b)
        if point == f"after-rename-{len(renames)}":
            os._exit(9)
    os.rename = rename
    real_exchange = atomic.exchange_dirs
    def exchange_then_die(a, b):
        done = real_exchange(a, b)
        if point == "after-exchange":
            os._exit(9)
        return done
    atomic.exchange_dirs = exchange_then_die
    shutil.rmtree = lambda *a, **k: os._exit(9) if point == "before-cleanup" else None
    atomic.publish_dir(staged, out)
    """
)
POINTS = [
    ("before-rename-1", "0"),
    ("after-rename-1", "0"),
    ("after-rename-2", "0"),
    ("before-cleanup", "0"),
    ("after-exchange", "1"),
    ("before-cleanup", "1"),
]


def _old(tmp_path: Path) -> Path:
    out = tmp_path / "idx"
    out.mkdir()
    (out / "version").write_text("old")
    return out


@pytest.mark.parametrize(("point", "exchange"), POINTS)
def test_a_kill_while_publishing_leaves_a_complete_dir(tmp_path, point, exchange) -> None:
    out = _old(tmp_path)
    subprocess.run([sys.executable, "-c", KILL_AT, str(out), point, exchange], check=False)
    recover_dir(out)  # what the next command does first
    assert (out / "version").read_text() in ("old", "new")


@pytest.mark.parametrize(("point", "exchange"), POINTS)
def test_the_next_command_removes_dead_leftovers(tmp_path, point, exchange) -> None:
    out = _old(tmp_path)
    subprocess.run([sys.executable, "-c", KILL_AT, str(out), point, exchange], check=False)
    recover_dir(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


def test_leftovers_of_a_live_writer_are_kept(tmp_path) -> None:
    out = _old(tmp_path)
    staged = staging_dir(out)  # this process is alive: its staging dir is work in progress
    recover_dir(out)
    assert staged.is_dir()


def test_publish_over_an_existing_dir_swaps_it(tmp_path) -> None:
    out = _old(tmp_path)
    staged = staging_dir(out)
    (staged / "version").write_text("new")
    publish_dir(staged, out)
    assert (out / "version").read_text() == "new"


def test_exchange_is_available_here(tmp_path) -> None:
    # Linux with glibc >= 2.28: the atomic path, not the fallback, is what runs in production.
    if sys.platform != "linux":
        pytest.skip("renameat2 is Linux only")
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "f").write_text("a")
    assert exchange_dirs(a, b)


def test_exchange_swaps_the_contents(tmp_path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "f").write_text("a")
    if not exchange_dirs(a, b):
        pytest.skip("no renameat2 here")
    assert (b / "f").read_text() == "a"
