"""Deleting rows of an embedding dir by id or by source (``embedsearch delete``).

A deletion is a record in the manifest (``deleted_ids``), not a rewrite of the shards: every
reader skips deleted rows (:mod:`embedsearch.store.reader`), ``index --append`` removes them
from an index, and their ids are never given out again. ``embed`` records the rows of files
gone from a folder the same way (:mod:`embedsearch.embedding`).

Sources match the ``source`` column as stored, or as ``dedup`` writes it into ``remove.txt``
(newlines inside a text become spaces there), so a dedup result flows straight back:

Example:
    >>> delete_rows("emb/", sources=read_source_list("dedup/remove.txt"))   # doctest: +SKIP
    DeleteResult(deleted=41, already_deleted=0, not_found=[])
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedsearch.errors import InputError
from embedsearch.store.embedding_dir import EmbeddingDir
from embedsearch.store.reader import column_to_numpy, iter_batches


@dataclass
class DeleteResult:
    """What :func:`delete_rows` did: rows newly deleted, rows named that were deleted before,
    and the ids or sources that match no row of the dir."""

    deleted: int = 0
    already_deleted: int = 0
    not_found: list[str] = field(default_factory=list)


def read_source_list(path: str | Path) -> list[str]:
    """The sources of a ``remove.txt``-style file: one a line, blank lines skipped.

    Example:
        >>> import tempfile; f = tempfile.mktemp()
        >>> _ = open(f, "w").write("/p/a.jpg\\n\\n/p/b.jpg\\n")
        >>> read_source_list(f)
        ['/p/a.jpg', '/p/b.jpg']
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return [line.rstrip("\r\n") for line in handle if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the list of sources {path}: {e}") from e


def _as_listed(source: str) -> str:
    """A source as ``remove.txt`` spells it (one line)."""
    return source.replace("\n", " ")


def delete_rows(
    emb_dir: EmbeddingDir | str | Path,
    *,
    ids: Iterable[int] = (),
    sources: Iterable[str] = (),
) -> DeleteResult:
    """Record the rows with the given ``ids`` or ``sources`` as deleted (see the module doc).

    Every row of a named source goes (a source listed twice in a table has two rows). A relative
    path matches the absolute one ``embed`` stored for a folder. Held under the dir's run lock:
    refused while an ``embed`` writes the dir.
    """
    d = emb_dir if isinstance(emb_dir, EmbeddingDir) else EmbeddingDir.open(emb_dir)
    wanted_ids = np.array(sorted({int(i) for i in ids}), np.int64)
    forms = {_as_listed(s): _forms(_as_listed(s), d.modality) for s in sources}
    wanted_sources = set().union(*forms.values()) if forms else set()
    if not len(wanted_ids) and not forms:
        raise InputError("name the rows to delete: --ids ID,... or --sources-from FILE")
    with d.writing():
        d.reload()
        dead = d.dead_ids
        found_ids: set[int] = set()
        found_sources: set[str] = set()
        for batch in iter_batches(d, ["id", "source"], live_only=False):
            row_ids = column_to_numpy(batch.column("id"), np.int64)
            named = np.isin(row_ids, wanted_ids)
            if wanted_sources:
                for row, source in enumerate(batch.column("source").to_pylist()):
                    listed = _as_listed(source or "")
                    if listed in wanted_sources:
                        named[row] = True
                        found_sources.add(listed)
            found_ids.update(row_ids[named].tolist())
        result = DeleteResult(already_deleted=len(found_ids & dead))
        result.deleted = d.record_deleted(found_ids - dead)
    result.not_found = [str(i) for i in wanted_ids.tolist() if i not in found_ids]
    result.not_found += [name for name, names in forms.items() if not names & found_sources]
    return result


def _forms(source: str, modality: str) -> set[str]:
    """The stored spellings a named source may have: a relative image path is also tried
    absolute (``embed`` stores a folder's files by absolute path)."""
    if modality == "image" and not os.path.isabs(source):
        return {source, os.path.abspath(source)}
    return {source}
