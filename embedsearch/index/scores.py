"""What a score means for one index: percentiles of its scores, recorded at build time.

A cosine of 0.97 is a near copy in one corpus and an unrelated image in another (untrained
SimCLR vectors score 0.99 against everything). The build already searches its tuning queries,
so it records, cheaply, the percentiles of three kinds of scores in ``index.json``
``score_percentiles``:

- ``nearest``: each sample row's best neighbour (rank 1, itself excluded)
- ``neighbours``: its top-k neighbours
- ``unrelated``: pairs of two random sample rows (what "nothing in common" scores)

Example:
    >>> percentiles(np.array([0.1, 0.2, 0.3, 0.4, 0.5]))["p50"]
    0.3
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedsearch.index.centring import as_ranked, centre_of

PERCENTILES = (1, 10, 50, 90, 99)


def percentiles(scores: np.ndarray) -> dict[str, float]:
    """``{"p1": …, "p99": …}`` of the finite ``scores`` (empty when there are none)."""
    finite = np.asarray(scores, np.float64)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return {}
    values = np.percentile(finite, PERCENTILES)
    return {f"p{p}": round(float(v), 4) for p, v in zip(PERCENTILES, values, strict=True)}


def score_percentiles(
    index: Any, queries: np.ndarray, query_keys: np.ndarray, others: np.ndarray, k: int
) -> dict[str, dict[str, float]]:
    """Percentiles of ``index``'s scores for sample rows ``queries`` (their own keys
    ``query_keys`` left out) and of ``queries`` against other sample rows ``others``."""
    if not len(queries):
        return {}
    scores, keys = index.search(np.ascontiguousarray(queries, np.float32), k + 1)
    mine = (keys == np.asarray(query_keys)[:, None]) | (keys < 0)
    neighbours = np.where(mine, np.nan, scores)
    found = np.isfinite(neighbours)
    firsts = neighbours[np.arange(len(neighbours)), found.argmax(1)][found.any(1)]
    mean = centre_of(index)
    unrelated = as_ranked(queries, mean) @ as_ranked(others, mean).T
    return {
        "nearest": percentiles(firsts),
        "neighbours": percentiles(neighbours),
        "unrelated": percentiles(unrelated.ravel()),
    }


def describe_scores(info_percentiles: dict[str, dict[str, float]]) -> str | None:
    """One line for a reader: what a high score is in this index, or None without figures.

    Example:
        >>> line = describe_scores({"nearest": {"p50": 0.91}, "unrelated": {"p50": 0.02}})
        >>> line
        'scores: unrelated pairs 0.020 (median); nearest neighbours 0.910 (median)'
    """
    nearest = info_percentiles.get("nearest", {})
    unrelated = info_percentiles.get("unrelated", {})
    if "p50" not in nearest or "p50" not in unrelated:
        return None
    high = f", {unrelated['p99']:.3f} (1 in 100)" if "p99" in unrelated else ""
    return (
        f"scores: unrelated pairs {unrelated['p50']:.3f} (median){high}; "
        f"nearest neighbours {nearest['p50']:.3f} (median)"
    )


@dataclass(frozen=True)
class ScoreScale:
    """What a score means in one index, for query output: where a score falls among the scores
    of unrelated pairs (random pairs of its rows), from ``index.json`` ``score_percentiles``.

    ``percentile(score)``: the share (in %) of unrelated pairs scoring lower, interpolated between
    the recorded percentiles and clipped to their range 1…99 (None for an index built before they
    were recorded). A hit at 99 is as close as the closest 1 % of random pairs or closer.
    The pairs are of the index's own ``modality``: a text query's scores against an image index
    live on another scale (CLIP puts a caption and its image far below two similar images), so
    :meth:`applies_to` says which queries the percentiles describe.

    Example:
        >>> scale = ScoreScale("cosine", {"p1": 0.1, "p10": 0.2, "p50": 0.3, "p90": 0.5,
        ...                               "p99": 0.6}, {"p50": 0.8})
        >>> scale.percentile(0.55), scale.percentile(0.95), scale.percentile(0.0)
        (94.5, 99.0, 1.0)
        >>> scale.footer().split(" (")[0]
        'scores above 0.600 are in the top 1% of pairs in this index'
    """

    similarity: str = "cosine"
    unrelated: dict[str, float] = field(default_factory=dict)
    nearest: dict[str, float] = field(default_factory=dict)
    modality: str = "image"

    @classmethod
    def of(
        cls,
        percentiles: dict[str, dict[str, float]],
        similarity: str | None,
        modality: str = "image",
    ) -> ScoreScale:
        """From ``index.json``'s ``score_percentiles``, ``similarity`` (None: cosine) and
        ``modality``."""
        return cls(
            similarity or "cosine",
            dict(percentiles.get("unrelated", {})),
            dict(percentiles.get("nearest", {})),
            modality or "image",  # indexes that predate the field hold images
        )

    def applies_to(self, kind: str) -> bool:
        """Whether a query of ``kind`` (text, image, id, vector) scores on this scale: ids and
        vectors always (rows of the index, vectors of its model), text and image queries when
        they are of the index's modality.

        Example:
            >>> ScoreScale(modality="image").applies_to("text")
            False
        """
        return kind not in ("text", "image") or kind == self.modality

    @property
    def known(self) -> bool:
        """Whether the index recorded the percentiles of its unrelated pairs."""
        return all(f"p{p}" in self.unrelated for p in PERCENTILES)

    def percentile(self, score: float) -> float | None:
        """Share in % (1…99, one decimal) of unrelated pairs that score below ``score``."""
        if not self.known:
            return None
        levels = [self.unrelated[f"p{p}"] for p in PERCENTILES]
        return round(float(np.interp(score, levels, PERCENTILES)), 1)

    def footer(self) -> str | None:
        """One line saying what a high score is in this index (None without the figures)."""
        if not self.known:
            return None
        u = self.unrelated
        line = (
            f"scores above {u['p99']:.3f} are in the top 1% of pairs in this index "
            f"(median pair {u['p50']:.3f}"
        )
        if "p50" in self.nearest:
            line += f"; a row and its nearest neighbour: {self.nearest['p50']:.3f}, median"
        return line + ")"

    def to_dict(self) -> dict[str, Any]:
        """The figures as query JSON carries them (``score_scale``)."""
        return {
            "similarity": self.similarity,
            "unrelated_percentiles": dict(self.unrelated),
            "nearest_percentiles": dict(self.nearest),
        }
