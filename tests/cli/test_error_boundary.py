"""The CLI boundary: usage errors, I/O errors and Ctrl-C end in one line, never a traceback."""

from __future__ import annotations

import errno

import pytest


@pytest.mark.parametrize(
    "argv, words",
    [
        (["index", "e", "--out", "o", "--kind", "bogus"], "'bogus' is not one of"),
        (["embed", "x", "--model", "m", "--out", "o", "--device", "tpu"], "'tpu' is not one of"),
        (["query", "--no-such-option"], "No such option: --no-such-option"),
        (["no-such-command"], "No such command 'no-such-command'"),
        (["query"], "Missing argument"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(run_cli, argv, words) -> None:
    result = run_cli(*argv)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _info_raises(monkeypatch, error: BaseException) -> None:
    import embedsearch.info as info

    def boom(*args, **kwargs):
        raise error

    monkeypatch.setattr(info, "describe", boom)


def test_ctrl_c_prints_interrupted_and_exits_130(run_cli, monkeypatch, tmp_path) -> None:
    _info_raises(monkeypatch, KeyboardInterrupt())
    result = run_cli("info", tmp_path)
    assert (result.exit_code, result.stderr.strip()) == (130, "interrupted")


def test_disk_full_names_the_file(run_cli, monkeypatch, tmp_path) -> None:
    _info_raises(monkeypatch, OSError(errno.ENOSPC, "No space left on device", "/d/part-1.parquet"))
    result = run_cli("info", tmp_path)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: disk full: cannot write /d/part-1.parquet (No space left on device)"
    )


def test_permission_denied_names_the_file(run_cli, monkeypatch, tmp_path) -> None:
    _info_raises(monkeypatch, PermissionError(errno.EACCES, "Permission denied", "/ro/x"))
    result = run_cli("info", tmp_path)
    assert result.stderr.strip() == "error: Permission denied: /ro/x"


def test_arrow_invalid_is_one_line(run_cli, monkeypatch, tmp_path) -> None:
    import pyarrow as pa

    _info_raises(monkeypatch, pa.ArrowInvalid("Parquet magic bytes not found in footer"))
    result = run_cli("info", tmp_path)
    assert result.exit_code == 2
    assert "Parquet magic bytes not found" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_debug_shows_the_traceback_of_an_io_error(run_cli, monkeypatch, tmp_path) -> None:
    _info_raises(monkeypatch, OSError(errno.EROFS, "Read-only file system", "/ro"))
    result = run_cli("--debug", "info", tmp_path)
    assert "Traceback" in result.stderr


def test_programming_errors_keep_their_traceback(run_cli, monkeypatch, tmp_path) -> None:
    _info_raises(monkeypatch, KeyError("bug"))
    with pytest.raises(KeyError):
        run_cli("info", tmp_path)


def test_ctrl_c_in_a_real_process_prints_interrupted(tmp_path) -> None:
    """SIGINT while `query` waits on its --queries FIFO: 'interrupted', exit 130."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import numpy as np

    from embedsearch.index import build_index
    from embedsearch.store.arrays import write_embedding_dir

    write_embedding_dir(tmp_path / "emb", np.eye(4, dtype=np.float32))
    build_index([tmp_path / "emb"], tmp_path / "idx", kind="flat")
    fifo = tmp_path / "queries"
    os.mkfifo(fifo)
    child = subprocess.Popen(
        [sys.executable, "-c", "from embedsearch.cli.app import main; main()"]
        + ["query", str(tmp_path / "idx"), "--queries", str(fifo)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while True:  # the child holds the FIFO open for reading once it is waiting on it
        try:
            writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError:
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)
    # A SIGINT that lands just before the child blocks in read() is only acted on at the next
    # interruption (CPython checks signals between bytecodes): press Ctrl-C again, as a user
    # would, until the child is gone.
    for _ in range(60):
        child.send_signal(signal.SIGINT)
        try:
            _, err = child.communicate(timeout=1)
            break
        except subprocess.TimeoutExpired:
            continue
    os.close(writer)
    assert (child.returncode, err.strip().splitlines()[-1]) == (130, "interrupted")
