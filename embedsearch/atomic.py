"""Atomic writes: files (write beside the target, fsync, rename) and whole dirs (stage beside the
target, swap into place). Readers never see half a file or half a dir, and a published path is
never missing: an existing dir is swapped with the staged one in one ``renameat2(RENAME_EXCHANGE)``
call (Linux >= 3.15 on ext4, xfs, btrfs, tmpfs...). Where that call is missing the dir is replaced
by two renames, and a kill between them is repaired by the next writer or reader of the path
(:func:`recover_dir`). Files are created with mode 0666 less the umask, like ``open()``'s.

Kept free of heavy imports: manifests and index metadata are written by code paths
(store, index) that must not load torch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import re
import shutil
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
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _create_temp(path: Path) -> tuple[int, str]:
    """A new hidden file beside ``path``; mode 0666 less the umask (mkstemp's 0600 ignores it)."""
    while True:
        tmp = str(path.parent / f".{path.name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def fresh_file_mode(folder: str | Path) -> int:
    """The mode a new file in ``folder`` gets from ``open()`` (0666 less the umask).

    For files that a library writes with a fixed mode (safetensors: 0600): chmod them to this.
    Found with a probe file rather than ``os.umask()``, which would change process-wide state.

    Example:
        >>> import tempfile
        >>> fresh_file_mode(tempfile.gettempdir()) & 0o600
        384
    """
    fd, probe = _create_temp(Path(folder) / "mode-probe")
    try:
        return os.fstat(fd).st_mode & 0o777
    finally:
        os.close(fd)
        os.unlink(probe)


def staging_dir(out: str | Path) -> Path:
    """A fresh hidden folder beside ``out`` where a new output dir is assembled.

    It sits on the same filesystem as ``out``, so :func:`publish_dir` is a rename.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(out)
    while True:
        staged = out.parent / f".{out.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            staged.mkdir()  # not mkdtemp: its mode 0700 would ignore the umask once published
            return staged
        except FileExistsError:
            continue


def publish_dir(staged: Path, out: Path) -> None:
    """Put the complete ``staged`` dir at ``out``; an old ``out`` is swapped out, then removed.

    With ``renameat2(RENAME_EXCHANGE)`` the swap is one atomic step: ``out`` is the old dir or
    the new one at every instant. Without it, a kill between the two renames leaves ``out``
    missing and the old dir in ``.NAME.old-PID-*``, which :func:`recover_dir` moves back.
    """
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        os.rename(staged, out)
        return
    if exchange_dirs(staged, out):
        shutil.rmtree(staged, ignore_errors=True)  # staged now holds the old dir
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}-{os.urandom(4).hex()}"
    os.rename(out, old)
    os.rename(staged, out)
    shutil.rmtree(old, ignore_errors=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange_dirs(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2``); False where the system cannot.

    Example:
        >>> exchange_dirs(Path("out/.idx.tmp-1-ab"), Path("out/idx"))   # doctest: +SKIP
        True
    """
    libc_name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError, TypeError):
        return False  # not Linux, or a libc older than 2.28
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    renameat2.argtypes += [ctypes.c_uint]
    a_bytes, b_bytes = os.fsencode(a), os.fsencode(b)
    if renameat2(_AT_FDCWD, a_bytes, _AT_FDCWD, b_bytes, _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False  # old kernel or a filesystem without exchange: fall back
    raise OSError(err, os.strerror(err), str(a), None, str(b))


_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)-[0-9a-f]+$")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs here (a writer whose leftovers must not be touched)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_dir(out: str | Path) -> list[str]:
    """Repair what an interrupted publish left beside ``out``; returns the names removed.

    Leftovers of dead writers only (a live writer's staging dir is its work in progress): when
    ``out`` is missing, its newest old copy is moved back; every other ``.NAME.tmp-*`` and
    ``.NAME.old-*`` of a dead writer is removed (each is a full-size hidden copy).

    Example:
        >>> recover_dir("indexes/photos")   # doctest: +SKIP
        ['.photos.tmp-4242-0a1b2c3d']
    """
    out = Path(out)
    try:
        entries = list(out.parent.iterdir())
    except OSError:
        return []
    dead = []
    for entry in entries:
        match = _LEFTOVER.match(entry.name)
        if match and match["name"] == out.name and not pid_alive(int(match["pid"])):
            dead.append((entry, match["kind"]))
    olds = sorted((e for e, kind in dead if kind == "old"), key=lambda e: e.stat().st_mtime)
    if olds and not out.exists():
        try:
            os.rename(olds[-1], out)
        except OSError:
            pass  # another process restored it first
    removed = []
    for entry, _ in dead:
        if entry.exists():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return removed


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


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` at ``dst`` (files never rewritten once written can be shared), else
    copy it (another file system)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
