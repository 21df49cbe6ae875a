"""Adding rows to an index being built or appended to, while its recall ground truth grows.

:func:`add_rows` streams the embedding dirs once: rows are added to the faiss index under
their keys and written to a new metadata file, and every row (added or already indexed)
updates the exact neighbours of the query samples (by centred cosine when the index centres:
:mod:`~embedsearch.index.centring`).

Example:
    >>> add_rows(parts, dirs, [0], staged, skip=None, progress=NullProgress())   # doctest: +SKIP
    >>> parts.added                                                             # doctest: +SKIP
    200000
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedsearch.index import layout
from embedsearch.index.centring import as_ranked, centre_of
from embedsearch.index.layout import IndexInfo, MetadataFileEntry
from embedsearch.index.metadata import MetadataStore, MetadataWriter
from embedsearch.index.samples import Sample, iter_numbered_batches
from embedsearch.index.tune import ExactTopK
from embedsearch.progress import Progress
from embedsearch.store.embedding_dir import EmbeddingDir


@dataclass
class IndexParts:
    """An index being built: the faiss object, its ``index.json`` and the query samples."""

    index: Any
    info: IndexInfo
    tuning: Sample
    held_out: Sample
    k: int
    added: int = 0
    truth: list[np.ndarray] = field(default_factory=list)
    # the indexed rows again, in the order added (a fresh build): lets tuning escalate to an
    # exact refine (embedsearch.index.exact_refine); None where rows cannot be replayed
    replay: Callable[[], Iterable[np.ndarray]] | None = None


def add_rows(
    parts: IndexParts,
    dirs: Sequence[EmbeddingDir],
    numbers: Sequence[int],
    staged: Path,
    skip: MetadataStore | None,
    progress: Progress,
    add_to: set[int] | None = None,
) -> None:
    """Stream ``dirs``: add the rows of dirs in ``add_to`` (all by default) that ``skip`` does
    not hold; every row updates the ground truth of the query samples."""
    mean = centre_of(parts.index)  # exact search ranks by what the index ranks by
    truths = [
        ExactTopK(as_ranked(s.vectors, mean), s.keys(), parts.k)
        for s in (parts.tuning, parts.held_out)
    ]
    writers: dict[int, MetadataWriter] = {}
    next_file = len(parts.info.metadata_files)
    progress.start("adding", sum(d.live_rows for d in dirs))
    for number, batch, vectors in iter_numbered_batches(dirs, numbers):
        for other, writer in writers.items():
            if other != number:  # dirs come one after another: a finished dir's rows go to disk
                writer.flush()
        keys = layout.make_keys(batch.column("id").to_numpy(zero_copy_only=False), number)
        for truth in truths:
            truth.add(as_ranked(vectors, mean), keys)
        new = np.ones(len(keys), bool) if skip is None else ~skip.contains(keys)
        if add_to is not None and number not in add_to:
            new[:] = False
        if new.any():
            if number not in writers:
                name = layout.META_TEMPLATE.format(next_file + len(writers))
                writers[number] = MetadataWriter(staged / name)
            rows = np.flatnonzero(new)
            parts.index.add_with_ids(np.ascontiguousarray(vectors[rows]), keys[rows])
            writers[number].write(keys[rows], number, batch.take(rows))
            parts.added += len(rows)
        progress.advance(batch.num_rows)
    progress.stop()
    for number, writer in writers.items():
        writer.close()
        entry = MetadataFileEntry(file=writer.path.name, dir=number, rows=writer.rows)
        parts.info.metadata_files.append(entry)
        parts.info.sources[number].indexed_rows += writer.rows
    parts.truth = [t.keys() for t in truths]
