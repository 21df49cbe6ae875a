"""One writer per output dir, checked with real processes (flock is per process, not thread)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from embedsearch.store import EmbeddingDir, write_embedding_dir
from embedsearch.store.runlock import BusyError, writer_lock

HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from embedsearch.store.runlock import writer_lock
    job = sys.argv[2] or None
    with writer_lock(Path(sys.argv[1]), "the dir", job):
        print("held", flush=True)
        time.sleep(60)
    """
)


def _holder(lock: Path, job: str = "") -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lock), job], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.fixture
def held(tmp_path: Path):
    procs: list[subprocess.Popen] = []

    def start(job: str = "") -> subprocess.Popen:
        procs.append(_holder(tmp_path / "w.lock", job))
        return procs[-1]

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_second_writer_is_refused_naming_the_holders_pid(tmp_path: Path, held) -> None:
    proc = held()
    with (
        pytest.raises(BusyError, match=f"pid {proc.pid} on "),
        writer_lock(tmp_path / "w.lock", "the dir"),
    ):
        pass


def test_processes_of_one_job_share_the_lock(tmp_path: Path, held) -> None:
    held("torchrun:host:29500:run1")
    with writer_lock(tmp_path / "w.lock", "the dir", "torchrun:host:29500:run1"):
        shared = True
    assert shared


def test_a_writer_of_another_job_is_refused(tmp_path: Path, held) -> None:
    held("torchrun:host:29500:run1")
    with pytest.raises(BusyError), writer_lock(tmp_path / "w.lock", "the dir", "other"):
        pass


def test_the_lock_of_a_killed_writer_is_free(tmp_path: Path, held) -> None:
    proc = held()
    proc.kill()
    proc.wait()
    with writer_lock(tmp_path / "w.lock", "the dir"):
        taken = True
    assert taken


def test_embedding_dir_writing_holds_the_dirs_run_lock(tmp_path: Path) -> None:
    d = write_embedding_dir(tmp_path / "e", np.eye(3, dtype=np.float32), model="m")
    proc = _holder(d.path / ".embedsearch" / "writer.lock")
    try:
        with pytest.raises(BusyError, match=str(d.path)), EmbeddingDir.open(d.path).writing():
            pass
    finally:
        proc.kill()
        proc.wait()
