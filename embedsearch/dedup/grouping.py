"""From pairs to groups: stars that do not chain (``knn``), leaks (``--against``), and the
chains SemDeDup's pruning makes.

Star groups: each group is built around a representative.

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

from embedsearch.dedup.options import Keep

RowsFunction = Callable[[np.ndarray], np.ndarray]


@dataclass
class Groups:
    """``rows`` grouped: ``group[i]`` is the group of ``rows[i]``; ``keep[i]``: its survivor."""

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


@dataclass
class Duplicates:
    """What a method found, in row numbers: pairs ``a``-``b`` with their ``score`` (``exact``:
    equal content hash), the groups, each query row's ``best`` score to another row (the
    histogram), and how the pairs were searched."""

    a: np.ndarray
    b: np.ndarray
    score: np.ndarray
    exact: np.ndarray
    groups: Groups
    best: np.ndarray
    search: str
    phash_pairs: int = 0  # pairs only the perceptual hash found (options.phash)


def choose_survivors(
    rows: np.ndarray,
    group: np.ndarray,
    keep: Keep,
    sizes: RowsFunction | None = None,
    vectors: RowsFunction | None = None,
) -> np.ndarray:
    """Boolean mask over ``rows``: the one survivor of each group by the ``keep`` rule.

    ``sizes(rows)`` gives file sizes / text lengths (for ``largest``); ``vectors(rows)``
    the embeddings (for ``centroid``).

    Example:
        >>> choose_survivors(np.array([4, 2, 9]), np.array([0, 0, 1]), "first").tolist()
        [False, True, True]
    """
    if keep == "first":
        score = -rows.astype(np.float64)
    elif keep == "largest" and sizes is not None:
        score = np.asarray(sizes(rows), dtype=np.float64)
    elif keep == "centroid" and vectors is not None:
        score = _centroid_scores(rows, group, vectors(rows))
    else:
        raise ValueError(f"keep={keep!r} needs its sizes or vectors")
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


def leak_groups(a: np.ndarray, b: np.ndarray) -> Groups:
    """One group per leaking row ``a`` of the main set: it (removed) and its matches ``b`` in
    the other set (kept).

    Example:
        >>> g = leak_groups(np.array([3, 3, 5]), np.array([10, 11, 12]))
        >>> g.rows.tolist(), g.group.tolist(), g.keep.tolist()
        ([3, 5, 10, 11, 12], [0, 1, 0, 0, 1], [False, False, True, True, True])
    """
    mains, group = np.unique(a, return_inverse=True)
    rows = np.concatenate([mains, b])
    groups = np.concatenate([np.arange(len(mains)), group])
    keep = np.concatenate([np.zeros(len(mains), bool), np.ones(len(b), bool)])
    return Groups(rows, groups.astype(np.int64), keep)


def chain_groups(removed: np.ndarray, matched: np.ndarray) -> Groups:
    """Each removed row joins the group of the kept row its chain of matches leads to.

    Example:
        >>> g = chain_groups(np.array([5, 7]), np.array([2, 5]))   # 7 matched 5, 5 matched 2
        >>> g.rows.tolist(), g.group.tolist(), g.keep.tolist()
        ([2, 5, 7], [0, 0, 0], [True, False, False])
    """
    parent = dict(zip(removed.tolist(), matched.tolist(), strict=True))

    def root(row: int) -> int:
        seen = set()
        while row in parent and row not in seen:
            seen.add(row)
            row = parent[row]
        return row

    roots = {row: root(row) for row in parent}
    kept = sorted(set(roots.values()))
    number = {row: i for i, row in enumerate(kept)}
    rows = np.array(kept + sorted(roots), dtype=np.int64)
    group = np.array(
        [number[r] for r in kept] + [number[roots[r]] for r in sorted(roots)], dtype=np.int64
    )
    keep = np.array([True] * len(kept) + [False] * len(roots), dtype=bool)
    order = np.lexsort((rows, group))
    return Groups(rows[order], group[order], keep[order])
