"""Which exceptions end a command with one line ``error: …`` instead of a traceback.

Only errors the user can act on are turned into a message: the library's own
:class:`~embedsearch.errors.EmbedsearchError`, click's usage errors, and errors of I/O
and parsing (``OSError`` — disk full, read-only dir, missing or unreadable file —,
Arrow's invalid-data errors, malformed JSON). The message names the file involved: the
exception's own ``filename``, or else the innermost ``path`` the library was working on.
Everything else (``TypeError``, ``KeyError``, …) is a bug and keeps its traceback.

Example:
    >>> user_message(OSError(28, "No space left on device", "/data/out/part-00001.parquet"))
    'disk full: cannot write /data/out/part-00001.parquet (No space left on device)'
    >>> user_message(KeyError("x")) is None
    True
"""

from __future__ import annotations

import errno
import json
import os
import re
import sys
from pathlib import Path
from types import TracebackType

_PATH_LOCALS = ("path", "file", "filename", "shard", "target")


def user_message(error: BaseException) -> str | None:
    """One line for the user, or None when ``error`` is a bug that deserves its traceback."""
    import typer

    from embedsearch.errors import EmbedsearchError

    if isinstance(error, EmbedsearchError):
        return _one_line(str(error))
    if isinstance(error, typer.TyperException):  # click's usage errors (Typer vendors click)
        return _one_line(_usage_message(error))
    if isinstance(error, OSError):
        return _os_message(error)
    if isinstance(error, json.JSONDecodeError):
        return _with_path(f"not valid JSON ({error})", error)
    if _is_arrow_data_error(error):
        return _with_path(f"unreadable or corrupt data ({_one_line(str(error))})", error)
    if isinstance(error, RuntimeError):
        message = _faiss_io_message(str(error))
        if message is None and _FAISS_READ.search(str(error)):  # a file faiss cannot parse
            detail = _one_line(str(error)).rsplit(".cpp:", 1)[-1].split(": ", 1)[-1]
            message = _with_path(f"unreadable index file ({detail})", error)
        return message
    return None


# faiss reports its file I/O failures as RuntimeError("Error in … index_write.cpp … write error
# in PATH: … (No space left on device)"); only those are the user's, not faiss's other errors.
_FAISS_IO = re.compile(
    r"Error in .*?faiss::\w*(?:read|write)\w*.*?(?:error in|could not open) (\S+?)[:\s]"
)

_FAISS_READ = re.compile(r"Error in .*?faiss::read_index")


def _faiss_io_message(text: str) -> str | None:
    """One line for a faiss index-file read/write failure; None for any other RuntimeError.

    Example:
        >>> _faiss_io_message("Error in void faiss::write_index(const Index*, IOWriter*, int) "
        ...     "at index_write.cpp:499: Error: 'ret == (size * 4)' failed: write error in "
        ...     "/d/idx/index.faiss: 57262 != 768000 (No space left on device)")
        'disk full: cannot write /d/idx/index.faiss (No space left on device)'
        >>> _faiss_io_message("Error in faiss::IndexIVF::train: not enough points") is None
        True
    """
    match = _FAISS_IO.search(text)
    if match is None:
        return None
    path = match.group(1)
    if "No space left on device" in text:
        return f"disk full: cannot write {path} (No space left on device)"
    detail = _one_line(text.split("failed:", 1)[-1]) if "failed:" in text else _one_line(text)
    return f"{path}: unreadable or unwritable index file ({detail})"


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.strip().splitlines() if part.strip())


def _usage_message(error: BaseException) -> str:
    format_message = getattr(error, "format_message", None)
    message = format_message() if callable(format_message) else str(error)
    ctx = getattr(error, "ctx", None)
    if ctx is not None and getattr(ctx, "command_path", None):
        message += f" (see '{ctx.command_path} --help')"
    return message.replace("Value error, ", "")  # pydantic's prefix on a bad choice


def _os_message(error: OSError) -> str:
    where = error.filename if error.filename is not None else _innermost_path(error)
    shown = os.fsdecode(where) if where is not None else None
    reason = error.strerror or _one_line(str(error)) or type(error).__name__
    if error.errno == errno.ENOSPC or error.errno == errno.EDQUOT:
        return f"disk full: cannot write {shown} ({reason})" if shown else f"disk full ({reason})"
    if error.errno == errno.EROFS:
        return f"read-only file system: cannot write {shown}" if shown else "read-only file system"
    return f"{reason}: {shown}" if shown else reason


def _with_path(message: str, error: BaseException) -> str:
    where = _innermost_path(error)
    return f"{where}: {message}" if where is not None else message


def _is_arrow_data_error(error: BaseException) -> bool:
    # Checked without importing pyarrow: if it was never imported, it raised nothing.
    arrow = sys.modules.get("pyarrow")
    if arrow is None:
        return False
    kinds = tuple(
        getattr(arrow, name)
        for name in ("ArrowInvalid", "ArrowIOError", "ArrowNotImplementedError")
        if hasattr(arrow, name)
    )
    return isinstance(error, kinds)


def _innermost_path(error: BaseException) -> str | None:
    """The innermost ``path``-like local of an embedsearch frame on the error's traceback."""
    package = str(Path(__file__).resolve().parents[1])
    found: str | None = None
    tb: TracebackType | None = error.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_filename.startswith(package):
            found = _path_in(frame.f_locals) or found
        tb = tb.tb_next
    return found


def _path_in(names: dict[str, object]) -> str | None:
    """A path-like local (``path``, ``file``, ``*_path``…), else the ``path`` of ``self``."""
    owner = names.get("self")
    candidates = [names.get(name) for name in _PATH_LOCALS]
    candidates += [value for name, value in names.items() if name.endswith("_path")]
    candidates += [getattr(owner, name, None) for name in ("path", "_path")]
    for value in candidates:
        if isinstance(value, (str, Path)) and str(value):
            return str(value)
    return None
