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
