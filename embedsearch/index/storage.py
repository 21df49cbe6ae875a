"""How an index dir's faiss index is stored and opened: read whole, memory-mapped, or on disk.

``index.json`` ``storage`` says which layout the dir has:

- ``memory`` (also every dir written before ``storage`` was recorded): ``index.faiss`` holds
  everything. It is read whole -- unless it is an IVF index larger than half the memory this
  process may use (the smaller of ``MemAvailable`` and its cgroup's limit), which is opened
  memory-mapped (faiss ``IO_FLAG_MMAP``): the inverted lists stay in the page cache, which the
  kernel can evict, instead of the heap.
- ``ondisk``: a merged build whose lists did not fit ``--max-memory``
  (:mod:`~embedsearch.index.merge`): ``index.faiss`` holds the coarse quantizer and the list
  table, ``index.ivfdata`` the lists (faiss ``OnDiskInvertedLists``, as faiss's
  ``contrib/ondisk.py`` merges them), memory-mapped read-only on open.

Integrity: both files' sha256 are recorded when the dir is published. Opening reads and checks
what it loads into memory (a whole ``index.faiss``; the small ``index.faiss`` of an on-disk
index); the memory-mapped bulk -- an mmap'd ``index.faiss``, an ``index.ivfdata`` -- is checked
for its recorded size on open, and for its checksum by :func:`verify_bulk` (``embedsearch info
INDEX_DIR --verify``): hashing gigabytes on every open would defeat opening without reading.

Example:
    >>> should_mmap(file_bytes=8 << 30, ivf=True, available=4 << 30)
    True
    >>> should_mmap(file_bytes=1 << 30, ivf=True, available=4 << 30)
    False
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any, Literal

import numpy as np

from embedsearch.errors import FormatError

Storage = Literal["memory", "ondisk"]
MEMORY: Storage = "memory"
ONDISK: Storage = "ondisk"
IVF_DATA_FILE = "index.ivfdata"
# An IVF index.faiss larger than this share of the memory the process may use is memory-mapped.
MMAP_SHARE = 0.5


def memory_available() -> int:
    """Bytes this process may still use: ``MemAvailable``, capped by its cgroup's memory limit."""
    available = _meminfo_available()
    limit = _cgroup_limit()
    return min(available, limit) if limit else available


def _meminfo_available() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62  # unknown: do not force memory-mapping


def _cgroup_limit() -> int | None:
    """The memory limit of this process's cgroup (v2 ``memory.max`` or v1
    ``memory.limit_in_bytes``), None when there is none or it cannot be read."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            candidate = Path("/sys/fs/cgroup") / path.lstrip("/") / "memory.max"
        elif "memory" in controllers.split(","):
            candidate = Path("/sys/fs/cgroup/memory") / path.lstrip("/") / "memory.limit_in_bytes"
        else:
            continue
        try:
            text = candidate.read_text().strip()
        except OSError:
            continue
        if text != "max" and int(text) < 1 << 60:
            return int(text)
    return None


def should_mmap(file_bytes: int, ivf: bool, available: int) -> bool:
    """Memory-map an IVF ``index.faiss`` that would take more than half the available memory."""
    return ivf and file_bytes > MMAP_SHARE * available


def read_mapped(index_file: Path) -> Any:
    """An IVF ``index.faiss`` with its inverted lists memory-mapped from the file, read-only."""
    import faiss

    return faiss.read_index(str(index_file), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)


def _packed(name: str) -> bytes:
    encoded = name.encode()
    return struct.pack("<Q", len(encoded)) + encoded  # how faiss serialises a std::string


def read_ondisk(header: bytes, data_file: Path, written_as: str) -> Any:
    """An ``ondisk`` index from the bytes of its ``index.faiss`` (already verified by the caller)
    with its lists memory-mapped read-only from ``data_file``.

    faiss records the absolute path the lists were written to; a published, moved or copied dir
    has them elsewhere. faiss's own ``IO_FLAG_ONDISK_SAME_DIR`` fixes that but prints a line on
    stdout (which would corrupt ``--format json`` output), so the recorded path is replaced in the
    serialised bytes instead: ``written_as`` is recorded in ``index.json``.
    """
    import faiss

    old, new = _packed(written_as), _packed(str(data_file))
    if header.count(old) != 1:
        raise FormatError(
            f"{data_file.parent} is not a consistent on-disk index: its index.faiss does not name "
            f"the lists file index.json records ({written_as})"
        )
    blob = np.frombuffer(header.replace(old, new, 1), dtype=np.uint8)
    return faiss.deserialize_index(blob, faiss.IO_FLAG_READ_ONLY)


def check_size(path: Path, expected: int | None) -> None:
    """Refuse a memory-mapped file whose size is not the recorded one (truncated, replaced)."""
    if expected is None:
        return
    try:
        size = path.stat().st_size
    except OSError as e:
        raise FormatError(f"{path} is missing or unreadable: {e}") from e
    if size != expected:
        raise FormatError(
            f"{path} is corrupt ({size:,} bytes where {expected:,} were written); refusing to use "
            "it: rebuild the index with `embedsearch index ... --overwrite`"
        )


def verify_bulk(path: Path, expected_sha256: str | None) -> None:
    """Hash a memory-mapped file in full (streamed) against its recorded checksum."""
    from embedsearch.store.integrity import sha256_file

    if expected_sha256 is None:
        return
    if sha256_file(path) != expected_sha256:
        raise FormatError(
            f"{path} is corrupt (its checksum differs from the one in index.json); refusing to "
            "use it: rebuild the index with `embedsearch index ... --overwrite`"
        )


def file_size(path: Path) -> int:
    """Size of ``path`` in bytes (0 when it is missing: the caller names the missing file)."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
