"""Which stored rows lost their input since the last ``embed`` of a source: deletions.

``embed`` lists the source again (names only: nothing is read or decoded) and compares the
listing with the ``source`` of the dir's live rows. A row is *gone* only when its input is not
listed at all; an input that is listed but unreadable or undecodable this time keeps its row (it
goes to ``errors.parquet`` as a failure, and the next run retries it).

Policy (``prune``):

- image folder: the rows under the folder (by absolute path) whose file is gone are recorded as
  deleted by default (``--prune``); rows of other inputs in the same dir are never touched, and
  the rows under a sub-folder that could not be listed are kept.
- table or text file: a dir may hold the rows of several tables, and a row's ``source`` does not
  say which one it came from, so gone rows are only counted and reported unless ``--prune`` is
  given; and nothing is recorded while some of the table's rows cannot be read (their sources are
  unknown, so a missing source may be one of them).
- ``--no-prune``: nothing is recorded, gone rows are counted.

Example:
    >>> gone = find_gone(open_source("photos/"), known.ids_by_source, prune=None)  # doctest: +SKIP
    >>> gone.ids, gone.recorded                                                    # doctest: +SKIP
    ([17], True)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from embedsearch.data.sources import ImageFolderSource, Source, display_path


@dataclass
class Gone:
    """Stored rows whose input is no longer listed: their ids and sources, and whether the
    policy lets them be recorded as deleted (``held_back`` says why not)."""

    ids: list[int] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    recorded: bool = False
    held_back: str | None = None


def find_gone(
    source: Source, ids_by_source: Mapping[str, list[int]], prune: bool | None = None
) -> Gone:
    """The live rows (``ids_by_source``: source -> ids) whose input ``source`` no longer lists.

    ``prune``: True records them, False never, None (the default) records them for image folders
    only (see the module docstring).
    """
    folder = isinstance(source, ImageFolderSource)
    scope = (
        display_path(os.path.join(source.root, "")) if isinstance(source, ImageFolderSource) else ""
    )
    listed: set[str] = set()
    protected: list[str] = []  # sub-folders that could not be listed: their rows stay
    unknown = 0  # table/text rows whose source cannot be read this time
    for item in source:
        listed.add(item.source)
        if item.error is not None and item.path is not None:
            protected.append(os.path.join(item.source, ""))
        elif item.error is not None:
            unknown += 1
    gone = Gone()
    for name, ids in ids_by_source.items():
        if name in listed or not name.startswith(scope):
            continue
        if any(name.startswith(prefix) for prefix in protected):
            continue
        gone.sources.append(name)
        gone.ids.extend(ids)
    if not gone.ids:
        return gone
    if prune is False:
        gone.held_back = "--no-prune was given"
    elif unknown and not folder:
        gone.held_back = f"{unknown} rows of {source.description} could not be read this time"
    elif prune is None and not folder:
        gone.held_back = (
            "a table or text file is pruned only with --prune (the dir may hold other inputs)"
        )
    gone.recorded = gone.held_back is None
    return gone
