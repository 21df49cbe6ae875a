"""Atomic writes: files (write beside the target, fsync, rename) and whole dirs (stage beside the
target, rename into place). Readers never see half a file or half a dir.

Kept free of heavy imports: manifests and index metadata are written by code paths
(store, index) that must not load torch.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` via a temporary file and ``os.replace``.

    Example:
        >>> write_json_atomic("out/manifest.json", {"rows": 3})   # doctest: +SKIP
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def staging_dir(out: str | Path) -> Path:
    """A fresh hidden folder beside ``out`` where a new output dir is assembled.

    It sits on the same filesystem as ``out``, so :func:`publish_dir` is a rename.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    while True:
        staged = out.parent / f".{out.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            staged.mkdir()  # not mkdtemp: its mode 0700 would ignore the umask once published
            return staged
        except FileExistsError:
            continue


def publish_dir(staged: Path, out: Path) -> None:
    """Move the complete ``staged`` dir to ``out`` by renames; an old ``out`` goes only after.

    A crash before the final rename leaves only a hidden ``.NAME.tmp-*`` folder: ``out`` is
    either the old dir or the new one, never a half-written one.
    """
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        os.rename(staged, out)
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}-{os.urandom(4).hex()}"
    os.rename(out, old)
    os.rename(staged, out)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staged_dir(out: str | Path) -> Iterator[Path]:
    """A staging dir beside ``out``; removed on exit unless it was published.

    Example:
        >>> with staged_dir("out/dups") as staged:    # doctest: +SKIP
        ...     write_everything(staged)
        ...     publish_dir(staged, Path("out/dups"))
    """
    staged = staging_dir(out)
    try:
        yield staged
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary name beside ``path`` to write to; renamed over ``path`` when the block succeeds.

    For files written by other libraries (a plot, a checkpoint, weights, a CSV): the temporary
    name keeps ``path``'s suffix, so writers that infer the format from it still work.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "out.txt"
        >>> with replacing(target) as tmp:
        ...     _ = tmp.write_text("done")
        >>> target.read_text()
        'done'
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
