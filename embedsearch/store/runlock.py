"""One writer per output dir: an advisory lock held for a whole ``embed`` or ``index --append``.

Two writers of one dir lose rows (two appends each publish their own copy) or duplicate them
(two embeds number the same inputs twice). The lock is a ``flock`` on a small file that also
records who holds it, so the second writer fails at once with one line naming the holder
(pid, host, command, since when). The kernel drops the lock when its holder dies, so a
``kill -9`` never leaves a stale lock behind.

Processes of one job -- the ranks of a ``torchrun`` launch, or the ``--num-shards`` slices of one
scheduled run -- share a dir on purpose: they pass the same ``job`` key and share the lock (the
first takes it exclusively, records the key and downgrades to shared; the others join in shared
mode). A writer of another job still finds it held and is refused.

Example:
    >>> with writer_lock(Path("emb/.embedsearch/writer.lock"), "emb"):   # doctest: +SKIP
    ...     run_the_writer()
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from embedsearch.errors import EmbedsearchError

# How long to wait for a holder to finish writing its own record (it does so right after flock).
_RECORD_WAIT_S = 2.0


class BusyError(EmbedsearchError):
    """Another process is writing the same output dir."""


def _record(job: str | None) -> bytes:
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "python"
    return json.dumps(
        {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command[:200],
            "job": job,
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    ).encode()


def _read_record(fd: int) -> dict[str, Any] | None:
    try:
        data = os.pread(fd, 4096, 0)
        record = json.loads(data) if data else None
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _try(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _busy(what: str | Path, record: dict[str, Any] | None) -> BusyError:
    if record is None:
        holder = "another process"
    else:
        holder = (
            f"pid {record.get('pid')} on {record.get('host')} "
            f"(`{record.get('command')}`, since {record.get('since')})"
        )
    return BusyError(
        f"{what} is being written by {holder}; wait for it to finish or write elsewhere"
    )


@contextmanager
def writer_lock(lock_path: Path, what: str | Path, job: str | None = None) -> Iterator[None]:
    """Hold ``lock_path`` for the block, or raise :class:`BusyError` naming the holder.

    ``job``: a key shared by the processes of one job (see the module docstring); None for a
    writer that must be alone.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = time.monotonic() + _RECORD_WAIT_S
        while True:
            if _try(fd, fcntl.LOCK_EX):
                os.ftruncate(fd, 0)
                os.pwrite(fd, _record(job), 0)
                if job is not None:
                    fcntl.flock(fd, fcntl.LOCK_SH)  # let the job's other processes join
                break
            record = _read_record(fd)
            if record is not None and job is not None and record.get("job") == job:
                if _try(fd, fcntl.LOCK_SH):
                    break
            elif record is not None or time.monotonic() > deadline:
                raise _busy(what, record)
            if time.monotonic() > deadline:
                raise _busy(what, record)
            time.sleep(0.02)  # the holder is between flock and writing its record
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the flock
