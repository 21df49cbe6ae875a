"""``manifest.json`` of an embedding dir as a typed document (layout: DESIGN.md §3).

The manifest is the dir's commit record: a shard counts only once it is listed here, so the
file is rewritten last, atomically, under the dir's lock (:mod:`embedsearch.store.embedding_dir`).

Example:
    >>> m = Manifest(model="simclr:resnet18", fingerprint="ab12", modality="image", dim=4)
    >>> m.shards.append(ShardInfo("part-00000.parquet", rows=2, sha256="00", min_id=0, max_id=1))
    >>> m.count(failures=0)
    >>> m.totals
    Totals(rows=2, live_rows=2, failures=0)
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, ClassVar

from embedsearch.documents import JsonDocument, optional_field


def now() -> str:
    """The timestamp format of ``created``/``updated`` (local time with its UTC offset)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


@dataclasses.dataclass(frozen=True)
class ShardInfo:
    """One committed shard: its file, row count, checksum and id range."""

    file: str
    rows: int
    sha256: str
    min_id: int
    max_id: int


@dataclasses.dataclass
class Totals:
    """Row counts over all shards; ``live_rows`` leaves out superseded and deleted rows."""

    rows: int = 0
    live_rows: int = 0
    failures: int = 0


@dataclasses.dataclass(kw_only=True)
class Manifest(JsonDocument):
    """What an embedding dir holds: which model made it, its shards, totals and the next id."""

    FORMAT: ClassVar[str] = "embedsearch-embeddings"
    VERSION: ClassVar[int] = 1

    model: str
    model_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    fingerprint: str
    modality: str
    dim: int
    metric: str = "inner_product"
    normalized: bool = True
    source: str = ""
    created: str = dataclasses.field(default_factory=now)
    shards: list[ShardInfo] = dataclasses.field(default_factory=list)
    totals: Totals = dataclasses.field(default_factory=Totals)
    superseded_ids: list[int] = dataclasses.field(default_factory=list)
    next_id: int = 0
    updated: str | None = optional_field()  # absent until the first commit
    # open_clip models: the preprocess_cfg their pixels were made with (size, mean, std,
    # interpolation, resize_mode, fill_color); absent for other models and older dirs
    preprocess: dict[str, Any] | None = optional_field()
    # whether the model had trained weights (False: random init, announced on every use); the
    # run dir carried inside the dir (relative path) and its files' digest, so the model is found
    # again from any working dir and after a move (embedsearch.encoders.locate); absent in older
    # dirs and for models that are not run dirs
    model_trained: bool | None = optional_field()
    model_copy: str | None = optional_field()
    model_digest: str | None = optional_field()
    # rows whose input is gone (deleted from the folder, or by ``embedsearch delete``): not live,
    # their ids never reused, like superseded rows; absent until the first deletion
    deleted_ids: list[int] | None = optional_field()

    def __post_init__(self) -> None:
        # JSON gives nested objects as dicts; the types make a malformed entry a FormatError.
        self.shards = [s if isinstance(s, ShardInfo) else ShardInfo(**s) for s in self.shards]
        if isinstance(self.totals, dict):
            self.totals = Totals(**self.totals)
        self.model_options = dict(self.model_options or {})

    def count(self, failures: int) -> None:
        """Recompute :attr:`totals` from the shards, the dead (superseded or deleted) ids and
        ``failures``."""
        rows = sum(s.rows for s in self.shards)
        dead = set(self.superseded_ids).union(self.deleted_ids or ())
        self.totals = Totals(rows, rows - len(dead), failures)
