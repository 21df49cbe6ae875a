"""The index dir on disk: file names, ``index.json``, faiss keys, atomic publishing.

Layout (a contract: ``query``, ``dedup`` and Python read it; see ``indexes/README.md``):

- ``index.faiss``: the faiss index; its ids are *keys* (below)
- ``index.json``: format + version, kind, factory string, metric, search params, measured
  recall@k, latency, memory bytes, build seconds, ntotal, dim, model spec/options/fingerprint,
  ``sources`` (one entry per embedding dir: absolute path, fingerprint, rows, manifest summary)
  and ``metadata_files``
- ``meta-NNNNN.arrow``: key -> ``id``, ``dir``, ``source``, ``content_hash`` + metadata
  columns, one file per indexed embedding dir and build/append step

A key is ``(dir << 40) | id``: the embedding id of a row of ``sources[dir]``. Rows of the
first dir have key == embedding id; rows of later dirs stay distinct even when their ids
collide with the first dir's.

Example:
    >>> make_keys(np.array([3, 4]), 1).tolist()
    [1099511627779, 1099511627780]
    >>> split_keys(np.array([1099511627779]))[0].tolist(), split_keys(np.array([1099511627779]))[1].tolist()
    ([3], [1])
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from embedsearch.atomic import write_json_atomic
from embedsearch.errors import FormatError, InputError

FORMAT = "embedsearch-index"
FORMAT_VERSION = 1
INDEX_FILE = "index.faiss"
INFO_FILE = "index.json"
META_TEMPLATE = "meta-{:05d}.arrow"
KEY_BITS = 40
ID_LIMIT = 1 << KEY_BITS


def make_keys(ids: np.ndarray, dir_number: int) -> np.ndarray:
    """Embedding ids of ``sources[dir_number]`` -> faiss keys (refuses ids >= 2**40)."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= ID_LIMIT):
        raise InputError(
            f"embedding ids must lie in [0, 2**{KEY_BITS}); got {int(ids.min())}..{int(ids.max())}"
        )
    return (np.int64(dir_number) << np.int64(KEY_BITS)) | ids


def split_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """faiss keys -> (embedding ids, dir numbers)."""
    keys = np.asarray(keys, dtype=np.int64)
    return keys & np.int64(ID_LIMIT - 1), keys >> np.int64(KEY_BITS)


def is_index_dir(path: str | Path) -> bool:
    """True when ``path`` holds an ``index.json`` of this format."""
    info = Path(path) / INFO_FILE
    if not info.is_file():
        return False
    try:
        return json.loads(info.read_text()).get("format") == FORMAT
    except (OSError, json.JSONDecodeError):
        return False


def read_info(path: str | Path) -> dict[str, Any]:
    """Load and check ``index.json``; :class:`FormatError` for anything that is not an index dir."""
    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path} does not exist")
    try:
        info = json.loads((path / INFO_FILE).read_text())
    except FileNotFoundError as e:
        raise FormatError(f"{path} is not an index dir (no {INFO_FILE})") from e
    except (OSError, json.JSONDecodeError) as e:
        raise FormatError(f"{path / INFO_FILE} is unreadable: {e}") from e
    if info.get("format") != FORMAT:
        raise FormatError(f"{path / INFO_FILE} is not an embedsearch index")
    if info.get("format_version", 0) > FORMAT_VERSION:
        raise FormatError(f"{path} was written by a newer embedsearch")
    if not (path / INDEX_FILE).is_file():
        raise FormatError(f"{path} is missing {INDEX_FILE}")
    return info


def write_info(path: Path, info: dict[str, Any]) -> None:
    """Write ``index.json`` atomically."""
    info["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_json_atomic(path / INFO_FILE, info)


def staging_dir(out: Path) -> Path:
    """A fresh hidden folder beside ``out`` where the new index dir is assembled."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
    tmp.mkdir()
    return tmp


def check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse to replace something that is not ours, or an index without ``overwrite``."""
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    if not any(out.iterdir()):
        return
    if not is_index_dir(out):
        raise InputError(f"--out {out} is a non-empty folder that is not an index dir")
    if not overwrite:
        raise InputError(
            f"--out {out} is already an index: use --append to add rows or --overwrite to rebuild"
        )


def publish(staged: Path, out: Path) -> None:
    """Move the complete ``staged`` dir to ``out`` by renames (``index.json`` was written last).

    A crash before the final rename leaves only a hidden ``.NAME.tmp-*`` folder; ``out``
    is either the old index or the new one, never a half-written dir that looks valid.
    """
    if out.exists() and out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        os.rename(staged, out)
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}-{os.urandom(4).hex()}"
    os.rename(out, old)
    os.rename(staged, out)
    shutil.rmtree(old, ignore_errors=True)


def discard(staged: Path) -> None:
    """Remove a staging dir after a failure."""
    shutil.rmtree(staged, ignore_errors=True)


class Staging:
    """Context manager: a staging dir beside ``out``, removed unless it was published.

    Example:
        >>> with Staging(out) as staged:            # doctest: +SKIP
        ...     write_everything(staged)
        ...     publish(staged, out)
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        self.path: Path | None = None

    def __enter__(self) -> Path:
        self.path = staging_dir(self.out)
        return self.path

    def __exit__(self, *exc: object) -> None:
        if self.path is not None and self.path.exists():
            discard(self.path)
