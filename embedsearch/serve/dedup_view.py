"""``DedupView``: a dedup result dir (``embedsearch dedup --out``) as pages of groups for the page.

Reads ``dedup.json`` (summary), ``groups.parquet`` (``group, id, source, keep, dir``; survivor
first) and ``pairs.parquet`` (``id_a, id_b, score, dir_a, dir_b``...). A group's members carry
their score to the kept image (the pair score when the pair was found, else null) and the group
lists all its pairs. Images are served by key like index rows, from the folders the dedup inputs
were embedded from (and ``--image-root``).

Example:
    >>> view = DedupView.open(Path("dups/"))        # doctest: +SKIP
    >>> view.page(0, 1)["groups"][0]["members"][0]["keep"]   # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from embedsearch.errors import FormatError
from embedsearch.serve.sources import safe_image_path, source_roots
from embedsearch.store.embedding_dir import EmbeddingDir

KEY_BITS = 40


class DedupView:
    """Groups and pairs of one dedup result dir, held in memory (columns, not row objects)."""

    def __init__(
        self, path: Path, summary: dict[str, Any], groups: Any, pairs: Any, roots: list[str]
    ) -> None:
        self.path = path
        self.summary = summary
        self.roots = roots
        self._groups = groups.to_pydict()
        numbers = np.asarray(self._groups["group"], np.int64)
        # groups.parquet is ordered by group: each group is a run of rows
        self._starts = (
            np.flatnonzero(np.r_[True, numbers[1:] != numbers[:-1]])
            if len(numbers)
            else np.zeros(0, int)
        )
        self._ends = np.r_[self._starts[1:], len(numbers)].astype(int)
        keys = (np.asarray(self._groups["dir"], np.int64) << KEY_BITS) | np.asarray(
            self._groups["id"], np.int64
        )
        self._row_of_key = {int(k): i for i, k in enumerate(keys.tolist())}
        self._pairs_of_group: dict[int, list[dict[str, Any]]] = {}
        self._index_pairs(pairs.to_pydict(), numbers)

    @classmethod
    def open(cls, path: Path, extra_roots: Iterable[Path] = ()) -> DedupView:
        """Load a dedup dir (:class:`FormatError` when it is not one)."""
        import pyarrow.parquet as pq

        path = Path(path).expanduser().resolve()
        try:
            summary = json.loads((path / "dedup.json").read_text())
            groups = pq.read_table(
                path / "groups.parquet", columns=["group", "id", "source", "keep", "dir"]
            )
            pairs = pq.read_table(
                path / "pairs.parquet", columns=["id_a", "id_b", "score", "dir_a", "dir_b"]
            )
        except (OSError, ValueError, KeyError) as e:
            raise FormatError(f"--dedup {path} is not a dedup result dir ({e})") from e
        roots = _input_roots(summary) + [os.path.realpath(p) for p in extra_roots]
        return cls(path, summary, groups, pairs, roots)

    def _index_pairs(self, pairs: dict[str, list[Any]], numbers: np.ndarray) -> None:
        for a, b, score, dir_a, dir_b in zip(
            pairs["id_a"],
            pairs["id_b"],
            pairs["score"],
            pairs["dir_a"],
            pairs["dir_b"],
            strict=True,
        ):
            row_a = self._row_of_key.get((dir_a << KEY_BITS) | a)
            row_b = self._row_of_key.get((dir_b << KEY_BITS) | b)
            if row_a is None or row_b is None or numbers[row_a] != numbers[row_b]:
                continue  # a pair the grouping split (chaining guard): not inside one group
            self._pairs_of_group.setdefault(int(numbers[row_a]), []).append(
                {"a": self._key(row_a), "b": self._key(row_b), "score": round(float(score), 5)}
            )

    def _key(self, row: int) -> int:
        return (int(self._groups["dir"][row]) << KEY_BITS) | int(self._groups["id"][row])

    @property
    def group_count(self) -> int:
        return len(self._starts)

    def page(self, offset: int, limit: int) -> dict[str, Any]:
        """Groups ``offset .. offset+limit``, each with its members (kept first) and pairs."""
        groups = []
        for start, end in zip(
            self._starts[offset : offset + limit], self._ends[offset : offset + limit], strict=True
        ):
            number = int(self._groups["group"][start])
            pairs = self._pairs_of_group.get(number, [])
            kept = next((self._key(r) for r in range(start, end) if self._groups["keep"][r]), None)
            to_kept = {}
            for pair in pairs:
                if kept in (pair["a"], pair["b"]):
                    to_kept[pair["b"] if pair["a"] == kept else pair["a"]] = pair["score"]
            members = [
                {
                    "key": self._key(r),
                    "id": self._groups["id"][r],
                    "dir": self._groups["dir"][r],
                    "source": self._groups["source"][r],
                    "keep": bool(self._groups["keep"][r]),
                    "score_to_kept": to_kept.get(self._key(r)),
                }
                for r in range(start, end)
            ]
            groups.append({"group": number, "members": members, "pairs": pairs})
        return {"total_groups": self.group_count, "offset": offset, "groups": groups}

    def resolve(self, key: int) -> Path | None:
        """The image of a grouped row, when it may be served."""
        row = self._row_of_key.get(key)
        return None if row is None else safe_image_path(self._groups["source"][row], self.roots)


def _input_roots(summary: dict[str, Any]) -> list[str]:
    """Folders the dedup inputs (embedding dirs or index dirs) were made from."""
    roots: list[str] = []
    for entry in [*summary.get("inputs", []), *summary.get("against", [])]:
        path = Path(entry)
        if EmbeddingDir.is_embedding_dir(path):
            roots += source_roots({"sources": [{"path": str(path)}]})
        elif (path / "index.json").is_file():
            try:
                roots += source_roots(json.loads((path / "index.json").read_text()))
            except (OSError, ValueError):
                continue
    return roots
