"""Groups that do not chain: each group is a star around a representative.

Connected components (fastdup) merge A and Z when A~B~...~Z, although A and Z may
share nothing. Here a group is built around a *representative* and an item joins
only when its own score with the representative passes the threshold, so a group's
members are all near-duplicates of one item and a chain of length L splits into about
L/3 groups. Representatives are visited by number of near-duplicates (most first,
ties by row order), so the item at the centre of a cluster of copies leads it.
Exact duplicates (equal ``content_hash``) are pairs of score 1 and always pass.

Which member survives is a separate choice (``keep``): ``first`` (earliest row),
``largest`` (largest file, or longest text), ``centroid`` (closest to the group's mean).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

KEEP_RULES = ("first", "largest", "centroid")


@dataclass
class Groups:
    """``rows`` grouped: ``group[i]`` is the group of ``rows[i]``; ``keep[i]`` marks each group's survivor."""

    rows: np.ndarray
    group: np.ndarray
    keep: np.ndarray

    @property
    def count(self) -> int:
        return int(self.group.max()) + 1 if len(self.group) else 0


def star_groups(rows_a: np.ndarray, rows_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Representative grouping of pairs (all already above the threshold) -> (rows, group numbers).

    Example:
        >>> rows, group = star_groups(np.arange(5), np.arange(1, 6))   # a chain 0-1-2-3-4-5
        >>> dict(zip(rows.tolist(), group.tolist()))                   # 5 is left alone
        {1: 0, 2: 0, 0: 0, 3: 1, 4: 1}
    """
    if len(rows_a) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    left = np.concatenate([rows_a, rows_b])
    right = np.concatenate([rows_b, rows_a])
    order = np.argsort(left, kind="stable")
    left, right = left[order], right[order]
    nodes, starts, degree = np.unique(left, return_index=True, return_counts=True)
    assigned: dict[int, int] = {}
    members_rows: list[int] = []
    members_group: list[int] = []
    group = -1
    for position in np.lexsort((nodes, -degree)):  # most neighbours first, then row order
        leader = int(nodes[position])
        if leader in assigned:
            continue
        joined = [leader] + [
            int(x)
            for x in right[starts[position] : starts[position] + degree[position]]
            if int(x) not in assigned
        ]
        if len(joined) < 2:
            continue  # every neighbour is taken: no group of one
        group += 1
        for row in dict.fromkeys(joined):
            assigned[row] = group
            members_rows.append(row)
            members_group.append(group)
    return np.asarray(members_rows, np.int64), np.asarray(members_group, np.int64)


def choose_survivors(
    rows: np.ndarray,
    group: np.ndarray,
    keep: str,
    sizes: Callable[[np.ndarray], np.ndarray] | None = None,
    vectors: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Boolean mask over ``rows``: the one survivor of each group by the ``keep`` rule.

    ``sizes(rows)`` gives file sizes / text lengths (for ``largest``); ``vectors(rows)``
    the embeddings (for ``centroid``).
    """
    if keep == "first":
        score = -rows.astype(np.float64)
    elif keep == "largest":
        score = np.asarray(sizes(rows), dtype=np.float64)
    elif keep == "centroid":
        score = _centroid_scores(rows, group, vectors(rows))
    else:
        raise ValueError(keep)
    # Best score per group wins; ties go to the earliest row.
    order = np.lexsort((rows, -score, group))
    first_of_group = np.ones(len(order), dtype=bool)
    first_of_group[1:] = group[order][1:] != group[order][:-1]
    mask = np.zeros(len(rows), dtype=bool)
    mask[order[first_of_group]] = True
    return mask


def _centroid_scores(rows: np.ndarray, group: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Each member's cosine with its group's mean vector."""
    count = int(group.max()) + 1 if len(group) else 0
    sums = np.zeros((count, vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, group, vectors)
    means = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return np.einsum("ij,ij->i", vectors, means[group])
