"""``Searcher``: query an index dir by vector, text, image or embedding id; get ``Hit``s.

The index dir is self-contained: the faiss index, its search parameters and the
key -> source + metadata store are all inside it, so a copied dir answers queries with
the embedding dirs gone. Text and image queries are embedded with the index's own model
(``index.json`` ``model`` + ``model_options``; a run dir is carried in ``model/``), loaded on
first use and checked by fingerprint (:mod:`embedsearch.encoders.locate`).

Every search takes ``where`` (a SQL condition over the metadata columns, ``id`` and
``source``: :mod:`~embedsearch.index.filters`), applied inside faiss so that k hits come back
whenever k rows match (:mod:`~embedsearch.index.filtered_search`), and ``min_score`` (hits
scoring below it are left out, so fewer than k may come back).

Example:
    >>> s = Searcher.open("indexes/photos")                                   # doctest: +SKIP
    >>> [(h.rank, h.source) for h in s.search_text("a red circle", k=2)]      # doctest: +SKIP
    [(1, 'shapes/circle_red_0007.png'), (2, 'shapes/circle_red_0003.png')]
    >>> s.search_text("a red circle", where="license = 'cc0'", min_score=0.25)  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from embedsearch.choices import Device
from embedsearch.errors import InputError
from embedsearch.index import layout
from embedsearch.index.exclusions import excluded_selector, search_with_selector
from embedsearch.index.filtered_search import CompiledFilters, FilteredPlan
from embedsearch.index.filters import matching_keys
from embedsearch.index.layout import IndexInfo
from embedsearch.index.metadata import KEY_COLUMNS, MetadataStore
from embedsearch.index.row_vectors import reconstruct, vector_from_source
from embedsearch.index.search_params import apply_search_params
from embedsearch.index.threads import search_threads

if TYPE_CHECKING:
    from embedsearch.encoders.base import Encoder

_NOT_METADATA = (*KEY_COLUMNS, "source")  # stored columns a hit shows as fields
# what a hit row holds besides its metadata (``query*``: the CLI's jsonl/csv rows and search_table)
HIT_FIELDS = frozenset(
    {"query", "query_index", "query_type", "rank", "id", "score", "percentile", "source", "dir"}
)


def _output_name(column: str) -> str:
    """A metadata column's name in hit rows: ``input_`` in front when it shadows a hit field."""
    return f"input_{column}" if column in HIT_FIELDS else column


@dataclass(slots=True)
class Hit:
    """One search result: ``id`` is the embedding id in ``index.json["sources"][dir]``."""

    rank: int
    id: int
    score: float
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)
    dir: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Flat dict for JSON/CSV output: rank, id, score, source, dir, then metadata columns
        (one named like a hit field, e.g. an input table's ``score`` column, becomes
        ``input_score``)."""
        return {
            "rank": self.rank,
            "id": self.id,
            "score": self.score,
            "source": self.source,
            "dir": self.dir,
            **{_output_name(name): value for name, value in self.metadata.items()},
        }


class Searcher:
    """An opened index dir. Build one with :meth:`Searcher.open`."""

    def __init__(
        self,
        path: Path,
        info: IndexInfo,
        index: Any,
        store: MetadataStore,
        device: Device,
        cpu_index: Any | None = None,
    ) -> None:
        self.path = path
        self.index_info = info
        self.index = index
        # filtered searches run here: faiss's GPU indexes take no IDSelector
        self.cpu_index = index if cpu_index is None else cpu_index
        # a selector over keys of rows no search may return (e.g. rows deleted since the build),
        # composed with any ``where`` filter
        self.exclusion: Any | None = excluded_selector(path)
        self.store = store
        self.device = device
        self.info: dict[str, Any] = info.to_json()  # as on disk (``index_info``: typed)
        self._encoder: Encoder | None = None
        self._filters = CompiledFilters(self.cpu_index)
        # which metadata columns a hit of each source dir shows (their files may differ)
        self._columns = {
            number: frozenset(names)
            for number, names in store.columns_of_dirs([m.dir for m in info.metadata_files]).items()
        }

    model_override: str | None = None  # ``query --model``: a run dir, checked by fingerprint

    @classmethod
    def open(
        cls, path: str | Path, *, device: Device = "auto", model: str | None = None
    ) -> Searcher:
        """Open an index dir (``FormatError`` when it is not one); ``device`` auto|cpu|cuda;
        ``model``: where the index's model is when it cannot be found (checked by fingerprint)."""

        from embedsearch.index.gpu import to_search_device, use_gpu

        path = Path(path).expanduser().resolve()
        info = layout.read_info(path)
        index = layout.read_index(path, info)  # verified against index.json's checksum
        apply_search_params(index, info.search_params)
        on_gpu = use_gpu(device) and info.kind in ("flat", "ivf", "ivfsq")
        store = MetadataStore(path, info.metadata_file_names())
        searcher = cls(path, info, to_search_device(index, on_gpu), store, device, cpu_index=index)
        searcher.model_override = model
        return searcher

    @property
    def dim(self) -> int:
        return self.index_info.dim

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def encoder(self) -> Encoder:
        """The index's model, loaded on first text/image query."""
        if self._encoder is None:
            # the carried copy, the recorded path, or the override; checked by fingerprint
            from embedsearch.encoders.locate import ModelRecord, load_recorded

            record = ModelRecord.of(self.index_info, self.path)
            self._encoder = load_recorded(record, self.model_override).to(self.device)
        return self._encoder

    # -- raw ------------------------------------------------------------------------------------
    def search_raw(
        self,
        vectors: np.ndarray,
        k: int = 10,
        *,
        where: str | None = None,
        min_score: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, keys) arrays straight from faiss, shape (n, k); key -1 = no result (fewer rows
        than k match ``where``, or the score is below ``min_score``)."""
        vectors = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        if vectors.shape[1] != self.dim:
            raise InputError(
                f"query vectors have dim {vectors.shape[1]}, the index holds dim {self.dim}"
            )
        if not np.isfinite(vectors).all():
            raise InputError("query vectors contain NaN/inf")
        if k < 1:
            raise InputError(f"-k must be at least 1, got {k}")
        if min_score is not None and not math.isfinite(min_score):
            raise InputError(f"--min-score must be a finite number, got {min_score}")
        # faiss allocates n * k results up front: a huge k aborts the process (std::bad_alloc),
        # and more hits than rows cannot be found anyway.
        k = min(int(k), max(self.ntotal, 1))
        # small batches search on one thread: OpenMP wake-ups cost more than the work
        with search_threads(len(vectors)):
            if where is None and self.exclusion is None:
                scores, keys = self.index.search(vectors, k)
            elif where is None:  # deleted rows only: skipped inside faiss (exclusions module)
                scores, keys = search_with_selector(self.cpu_index, vectors, k, self.exclusion)
            else:
                scores, keys = self._search_filtered(vectors, k, where)
        if min_score is not None:
            keys = np.where(scores >= min_score, keys, -1)
        return scores, keys

    # -- filters --------------------------------------------------------------------------------
    def matching(self, where: str) -> np.ndarray:
        """Sorted keys of the rows where the SQL condition ``where`` holds (an InputError naming
        the problem when it is not one over this index's columns)."""
        return matching_keys(self.store.tables, where)

    def filter_plan(self, where: str | None) -> FilteredPlan:
        """How a search with ``where`` runs here: ``.allowed`` rows, ``.describe()`` in one line
        (``hnsw, exact scan of 1,000 rows (0.1 % of rows)``)."""
        return self._filters.get(where, self.exclusion, self.matching).plan

    def _search_filtered(
        self, vectors: np.ndarray, k: int, where: str | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """faiss's search restricted to the rows ``where`` keeps and the exclusion lets through."""
        compiled = self._filters.get(where, self.exclusion, self.matching)
        return self._filters.search(compiled, vectors, k)

    # -- vectors --------------------------------------------------------------------------------
    def search_vectors(
        self,
        vectors: np.ndarray,
        k: int = 10,
        *,
        where: str | None = None,
        min_score: float | None = None,
    ) -> list[list[Hit]]:
        """One hit list per row of ``vectors`` (n, dim).

        Keys faiss returns as -1 (fewer than k results, e.g. short IVF lists) and keys the
        store does not hold are skipped, and the ranks close up.
        """
        return self._hits(*self.search_raw(vectors, k, where=where, min_score=min_score))

    def _hits(self, scores: np.ndarray, keys: np.ndarray) -> list[list[Hit]]:
        """faiss's (n, k) results -> one hit list a query."""
        found, rows = self._found_rows(keys)
        ids, dirs = (part.tolist() for part in layout.split_keys(keys[found]))
        ranks = np.cumsum(found, axis=1)[found].tolist()
        sources = rows.column("source").to_pylist()
        metadata = self._metadata(rows, dirs)
        # equal lengths by construction: strict zips would cost ~1 ms a 10,000 hits here
        hits = [
            Hit(rank, embedding_id, score, source, fields, number)
            for rank, embedding_id, score, source, fields, number in zip(
                ranks, ids, scores[found].tolist(), sources, metadata, dirs, strict=False
            )
        ]
        bounds = [0, *np.cumsum(found.sum(axis=1)).tolist()]
        return [hits[start:stop] for start, stop in itertools.pairwise(bounds)]

    def _found_rows(self, keys: np.ndarray) -> tuple[np.ndarray, pa.Table]:
        """(mask of the keys the store holds, shaped like ``keys``; their stored rows)."""
        rows = self.store.take(keys.reshape(-1))
        stored = rows.column("key").is_valid().to_numpy(zero_copy_only=False)
        return stored.reshape(keys.shape), rows.filter(stored)

    def _metadata(self, rows: pa.Table, dirs: list[int]) -> list[dict[str, Any]]:
        """One dict a hit of the metadata columns its source dir carries."""
        names = [name for name in rows.column_names if name not in _NOT_METADATA]
        columns = [rows.column(name).to_pylist() for name in names]
        dicts = [dict(zip(names, values, strict=False)) for values in zip(*columns, strict=False)]
        if not names:
            dicts = [{} for _ in dirs]
        # dirs whose files lack some of the columns: leave those out rather than show nulls
        absent = {d: [n for n in names if n not in have] for d, have in self._columns.items()}
        if any(absent.values()):
            for fields, number in zip(dicts, dirs, strict=True):
                for name in absent[number]:
                    del fields[name]
        return dicts

    def search_table(
        self,
        vectors: np.ndarray,
        k: int = 10,
        *,
        where: str | None = None,
        min_score: float | None = None,
    ) -> pa.Table:
        """Batch search as one Arrow table, a row per hit: ``query`` (row of ``vectors``), ``rank``,
        ``id``, ``dir``, ``score``, ``source``, then the metadata columns (renamed like
        :meth:`Hit.to_dict` does when they would shadow one of those).

        No Python object is made per hit, so this is the form for large batches (train/test leak
        checks, evaluations) and for dataframes: ``.to_pandas()``, ``polars.from_arrow(...)``.

        Example:
            >>> table = Searcher.open("indexes/photos").search_table(queries)   # doctest: +SKIP
            >>> table.to_pandas().groupby("query")["score"].max().head(2)     # doctest: +SKIP
        """
        scores, keys = self.search_raw(vectors, k, where=where, min_score=min_score)
        found, payload = self._found_rows(keys)
        ids, dirs = layout.split_keys(keys[found])
        columns = {
            "query": pa.array(np.nonzero(found)[0].astype(np.int32)),
            "rank": pa.array(np.cumsum(found, axis=1, dtype=np.int32)[found]),
            "id": pa.array(ids),
            "dir": pa.array(dirs.astype(np.int32)),
            "score": pa.array(scores[found]),
            "source": payload.column("source"),
        }
        for name in payload.column_names:
            if name not in _NOT_METADATA:
                columns[_output_name(name)] = payload.column(name)
        return pa.table(columns)

    def search_vector(
        self,
        vector: np.ndarray,
        k: int = 10,
        *,
        where: str | None = None,
        min_score: float | None = None,
    ) -> list[Hit]:
        """Hits of one query vector (dim,)."""
        return self.search_vectors(
            np.asarray(vector, np.float32).reshape(1, -1), k, where=where, min_score=min_score
        )[0]

    # -- text -----------------------------------------------------------------------------------
    def search_texts(
        self,
        texts: Sequence[str],
        k: int = 10,
        *,
        where: str | None = None,
        min_score: float | None = None,
    ) -> list[list[Hit]]:
        """Embed ``texts`` with the index's model (needs a text tower); search them as a batch."""
        if isinstance(texts, str):
            raise InputError("search_texts takes a list of texts; use search_text for one")
        return self.search_vectors(
            self.encoder.embed_texts(list(texts)), k, where=where, min_score=min_score
        )

    def search_text(
        self, text: str, k: int = 10, *, where: str | None = None, min_score: float | None = None
    ) -> list[Hit]:
        """Hits of one text query (text -> image search with a CLIP model)."""
        return self.search_texts([text], k, where=where, min_score=min_score)[0]

    # -- images ---------------------------------------------------------------------------------
    def search_images(
        self,
        images: Sequence[str | Path | Any],
        k: int = 10,
        *,
        where: str | None = None,
        min_score: float | None = None,
    ) -> list[list[Hit]]:
        """Search image files (paths) or PIL images, embedded with the index's model."""
        import torch

        from embedsearch.data.decode import DecodeError, load_image

        pixels = []
        for image in images:
            if isinstance(image, (str, Path)):
                try:
                    image = load_image(Path(image))
                except DecodeError as e:
                    raise InputError(f"cannot read query image {image}: {e}") from e
            pixels.append(self.encoder.preprocess(image))
        return self.search_vectors(
            self.encoder.embed_images(torch.stack(pixels)), k, where=where, min_score=min_score
        )

    def search_image(
        self,
        image: str | Path | Any,
        k: int = 10,
        *,
        where: str | None = None,
        min_score: float | None = None,
    ) -> list[Hit]:
        """Hits of one image query."""
        return self.search_images([image], k, where=where, min_score=min_score)[0]

    # -- ids ------------------------------------------------------------------------------------
    def search_ids(
        self,
        ids: Sequence[int],
        k: int = 10,
        dir: int = 0,
        *,
        where: str | None = None,
        min_score: float | None = None,
    ) -> list[list[Hit]]:
        """Search with the stored vectors of indexed rows (``ids`` of ``sources[dir]``)."""
        return self.search_vectors(
            np.stack([self.vector_of(i, dir) for i in ids]), k, where=where, min_score=min_score
        )

    def search_id(
        self,
        embedding_id: int,
        k: int = 10,
        dir: int = 0,
        *,
        where: str | None = None,
        min_score: float | None = None,
    ) -> list[Hit]:
        """Neighbours of an indexed row (the row itself comes first, unless filtered out)."""
        return self.search_ids([embedding_id], k, dir, where=where, min_score=min_score)[0]

    def vector_of(self, embedding_id: int, dir: int = 0) -> np.ndarray:
        """The vector of an indexed row: exact from its embedding dir when present, else as the
        index stores it."""
        key = int(layout.make_keys(np.array([embedding_id]), dir)[0])
        if not self.store.contains(np.array([key]))[0]:
            raise InputError(
                f"id {embedding_id} (source dir #{dir}) is not in the index {self.path}"
            )
        if self.exclusion is not None and not self.exclusion.is_member(key):
            raise InputError(_deleted(embedding_id, dir, self.path))
        info = self.index_info
        exact = vector_from_source(info.sources[dir], info.fingerprint, embedding_id)
        if exact is not None:
            return exact
        return reconstruct(self.index, key)


def _deleted(embedding_id: int, dir: int, index_dir: Path) -> str:
    return (
        f"id {embedding_id} (source dir #{dir}) was deleted or replaced: the index {index_dir} "
        "no longer returns it; query by another id, or --image with its file"
    )
