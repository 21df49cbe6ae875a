"""``contact.png``: a picture of what dedup will remove, so a threshold is chosen by looking.

Two parts, one row each, the kept image first (blue frame, ``keep``), then the ones removed with
their score under each (red frame):

- the largest groups (``GROUPS`` of them, ``MEMBERS`` images a row at most);
- the pairs nearest the threshold from above (``NEAR_PAIRS``): the weakest matches the threshold
  still lets through. If these are not copies, raise ``--threshold``; if they all plainly are,
  lowering it may find more (``histogram.png`` shows how many rows lie just below).

It scales: the rows drawn are fixed in number whatever the corpus, each image is decoded at
thumbnail size, and choosing them is a pass over the pairs and groups (no vectors are read).
A score is the pair's score in the space the threshold lives in; a member matched to its group
through another member than the kept one shows that best score, marked ``~``.

Example:
    >>> write_contact_sheet(staged / "contact.png", catalog, found, 0.93)   # doctest: +SKIP
    'contact.png'
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embedsearch.dedup.grouping import Duplicates
from embedsearch.dedup.inputs import Catalog
from embedsearch.index.hit_formats import Tile, write_sheet

GROUPS = 12
MEMBERS = 8
NEAR_PAIRS = 8
THUMB = 112
KEEP, REMOVE = "#1f4e99", "#b22222"


def write_contact_sheet(
    path: Path, catalog: Catalog, found: Duplicates, threshold: float, *, thumb: int = THUMB
) -> str:
    """Draw the sheet at ``path``; returns what ``dedup.json`` records: the file's name, or why
    there is none (a text corpus, no pairs)."""
    if catalog.dirs[0].modality != "image":
        return f"none: the sources are {catalog.dirs[0].modality or 'not images'}, not images"
    if not len(found.a):
        return "none: no pairs at this threshold"
    scores = _pair_scores(found)
    rows = _group_rows(catalog, found, scores) + _near_rows(catalog, found)
    title = (
        f"threshold {threshold:.4f}: the {min(GROUPS, found.groups.count)} largest groups, then "
        f"the {min(NEAR_PAIRS, len(found.a))} pairs nearest the threshold (kept image first)"
    )
    write_sheet(rows, path, thumb, title=title)
    return path.name


def _pair_scores(found: Duplicates) -> dict[tuple[int, int], float]:
    """(row, row) -> score for the pairs of the groups drawn only (bounded by GROUPS*MEMBERS)."""
    groups = found.groups
    sizes = np.bincount(groups.group) if len(groups.group) else np.zeros(0, np.int64)
    largest = np.argsort(-sizes, kind="stable")[:GROUPS]
    drawn = set(groups.rows[np.isin(groups.group, largest)].tolist())
    wanted = np.isin(found.a, list(drawn)) & np.isin(found.b, list(drawn))
    scores: dict[tuple[int, int], float] = {}
    for a, b, score in zip(
        found.a[wanted].tolist(), found.b[wanted].tolist(), found.score[wanted].tolist(),
        strict=True,
    ):  # fmt: skip
        scores[(a, b)] = scores[(b, a)] = max(score, scores.get((a, b), -1.0))
    return scores


def _group_rows(
    catalog: Catalog, found: Duplicates, scores: dict[tuple[int, int], float]
) -> list[list[Tile]]:
    groups = found.groups
    sizes = np.bincount(groups.group) if len(groups.group) else np.zeros(0, np.int64)
    rows = []
    for number in np.argsort(-sizes, kind="stable")[:GROUPS].tolist():
        at = np.flatnonzero(groups.group == number)
        kept = groups.rows[at][groups.keep[at]]
        removed = groups.rows[at][~groups.keep[at]]
        if not len(kept):
            continue
        keep = int(kept[0])
        others = sorted(removed.tolist(), key=lambda r: -_score_with(keep, r, removed, scores)[0])
        tiles = [_tile(catalog, keep, f"keep  (group of {int(sizes[number])})", KEEP)]
        for row in others[: MEMBERS - 1]:
            score, direct = _score_with(keep, row, removed, scores)
            tiles.append(_tile(catalog, row, f"{'' if direct else '~'}{score:.4f}", REMOVE))
        rows.append(tiles)
    return rows


def _score_with(
    keep: int, row: int, members: np.ndarray, scores: dict[tuple[int, int], float]
) -> tuple[float, bool]:
    """``row``'s score with the kept row, or (not paired with it) its best within the group."""
    if (keep, row) in scores:
        return scores[(keep, row)], True
    others = [scores.get((row, int(m)), -1.0) for m in members if int(m) != row]
    return max(others, default=-1.0), False


def _near_rows(catalog: Catalog, found: Duplicates) -> list[list[Tile]]:
    """The lowest-scoring pairs (those nearest the threshold), the kept one first when one is."""
    removed = set(found.groups.rows[~found.groups.keep].tolist())
    rows = []
    for i in np.argsort(found.score, kind="stable")[:NEAR_PAIRS].tolist():
        a, b = int(found.a[i]), int(found.b[i])
        if a in removed and b not in removed:
            a, b = b, a
        first = ("keep", KEEP) if a not in removed else ("remove", REMOVE)
        second = REMOVE if b in removed else KEEP
        label = f"{first[0]}  (near threshold)"
        score = f"{float(found.score[i]):.4f}"
        rows.append([_tile(catalog, a, label, first[1]), _tile(catalog, b, score, second)])
    return rows


def _tile(catalog: Catalog, row: int, label: str, colour: str) -> Tile:
    source = catalog.source_of(np.array([row]))[0].as_py() or ""
    return Tile(Path(source), source, label, colour)
