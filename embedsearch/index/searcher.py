"""``Searcher``: query an index dir by vector, text, image or embedding id; get ``Hit``s.

The index dir is self-contained: the faiss index, its search parameters and the
key -> source + metadata store are all inside it, so a copied dir answers queries with
the embedding dirs gone. Text and image queries are embedded with the index's own model
(``index.json`` ``model`` + ``model_options``), loaded on first use.

Example:
    >>> s = Searcher.open("indexes/photos")                    # doctest: +SKIP
    >>> [(h.rank, h.source, round(h.score, 3)) for h in s.search_text("a red circle", k=2)]  # doctest: +SKIP
    [(1, 'shapes/circle_red_0007.png', 0.312), (2, 'shapes/circle_red_0003.png', 0.309)]
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice, repeat
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from embedsearch.errors import InputError, MismatchError
from embedsearch.index import layout
from embedsearch.index.append import set_search_params_safe
from embedsearch.index.metadata import KEY_COLUMNS, MetadataStore

_FIXED = (*KEY_COLUMNS, "source")  # stored columns that are not metadata
# what a hit row holds besides its metadata (``query*``: the CLI's jsonl/csv rows and search_table)
HIT_FIELDS = frozenset(
    {"query", "query_index", "query_type", "rank", "id", "score", "source", "dir"}
)


def _output_name(column: str) -> str:
    """A metadata column's name in hit rows: ``input_`` in front when it would shadow a hit field."""
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
        (one named like a hit field, e.g. a ``score`` column of the input table, becomes ``input_score``)."""
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
        self, path: Path, info: dict[str, Any], index: Any, store: MetadataStore, device: str
    ) -> None:
        self.path = path
        self.info = info
        self.index = index
        self.store = store
        self.device = device
        self._encoder: Any = None

    @classmethod
    def open(cls, path: str | Path, *, device: str = "auto") -> Searcher:
        """Open an index dir (``FormatError`` when it is not one); ``device`` auto|cpu|cuda."""
        import faiss

        from embedsearch.index.gpu import to_search_device, use_gpu

        path = Path(path).expanduser().resolve()
        info = layout.read_info(path)
        index = faiss.read_index(str(path / layout.INDEX_FILE))
        set_search_params_safe(index, info.get("search_params", {}))
        index = to_search_device(
            index, use_gpu(device) and info["kind"] in ("flat", "ivf", "ivfsq")
        )
        store = MetadataStore(path, [m["file"] for m in info["metadata_files"]])
        return cls(path, info, index, store, device)

    @property
    def dim(self) -> int:
        return int(self.info["dim"])

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def encoder(self) -> Any:
        """The index's model, loaded on first text/image query."""
        if self._encoder is None:
            from embedsearch.encoders import load_encoder

            enc = load_encoder(self.info["model"], **(self.info.get("model_options") or {}))
            if enc.fingerprint != self.info["fingerprint"]:
                raise MismatchError(
                    f"model {self.info['model']} now has fingerprint {enc.fingerprint[:12]}, but the index "
                    f"was built from vectors of {self.info['fingerprint'][:12]}: its weights changed"
                )
            self._encoder = enc.to(self.device if self.device != "auto" else "auto")
        return self._encoder

    # -- raw ------------------------------------------------------------------------------------
    def search_raw(self, vectors: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """(scores, keys) arrays straight from faiss, shape (n, k); key -1 = no result."""
        vectors = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        if vectors.shape[1] != self.dim:
            raise InputError(
                f"query vectors have dim {vectors.shape[1]}, the index holds dim {self.dim}"
            )
        if not np.isfinite(vectors).all():
            raise InputError("query vectors contain NaN/inf")
        if k < 1:
            raise InputError(f"-k must be at least 1, got {k}")
        return self.index.search(vectors, int(k))

    # -- vectors --------------------------------------------------------------------------------
    def search_vectors(self, vectors: np.ndarray, k: int = 10) -> list[list[Hit]]:
        """One hit list per row of ``vectors`` (n, dim)."""
        scores, keys = self.search_raw(vectors, k)
        # Hits form no reference cycles, yet the ~21,000 container allocations of a 1000-query
        # batch (Hits, metadata dicts, lists) would set off ~30 young-generation collections
        # while they are made (~0.7 ms of ~4): pause the collector.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._hits(scores, keys)
        finally:
            if collecting:
                gc.enable()

    def _hits(self, scores: np.ndarray, keys: np.ndarray) -> list[list[Hit]]:
        """faiss's (n, k) results -> hit lists; -1 keys (fewer than k results, e.g. short IVF
        lists) and keys the store does not hold are skipped, and the ranks close up."""
        n, width = keys.shape
        flat = keys.reshape(-1)
        payload = self.store.payload_columns(flat)
        if payload is not None:
            found, columns = payload
            sources = columns.pop("source")
            metadata = _metadata_dicts(columns, len(sources))
        else:  # several metadata files, whose columns may differ: row by row
            rows = self.store.lookup(flat)
            found = np.array([r is not None for r in rows], bool)
            sources = [r["source"] for r in rows if r is not None]
            metadata = [
                {c: v for c, v in r.items() if c not in _FIXED} for r in rows if r is not None
            ]
        # the key carries the embedding id and the dir: no need to read them from the store
        ids, dirs = layout.split_keys(flat[found])
        if found.all():  # the usual case
            ranks, counts = list(range(1, width + 1)) * n, [width] * n
            score_list = scores.reshape(-1).tolist()
        else:
            present = found.reshape(n, width)
            ranks = np.cumsum(present, axis=1)[present].tolist()
            counts = present.sum(axis=1).tolist()
            score_list = scores.reshape(-1)[found].tolist()
        # one map over all hits runs the constructor at C speed; islice cuts it per query
        made = map(Hit, ranks, ids.tolist(), score_list, sources, metadata, dirs.tolist())
        return [list(islice(made, count)) for count in counts]

    def search_table(self, vectors: np.ndarray, k: int = 10) -> pa.Table:
        """Batch search as one Arrow table, a row per hit: ``query`` (row of ``vectors``), ``rank``,
        ``id``, ``dir``, ``score``, ``source``, then the metadata columns (renamed like
        :meth:`Hit.to_dict` does when they would shadow one of those).

        No Python object is made per hit, so this is the form for large batches (train/test leak
        checks, evaluations) and for dataframes: ``.to_pandas()``, ``polars.from_arrow(...)``.

        Example:
            >>> table = Searcher.open("indexes/photos").search_table(queries, k=5)   # doctest: +SKIP
            >>> table.to_pandas().groupby("query")["score"].max().head(2)          # doctest: +SKIP
        """
        scores, keys = self.search_raw(vectors, k)
        n, width = keys.shape
        flat = keys.reshape(-1)
        found, payload = self.store.gather(flat)
        present = found.reshape(n, width)
        ids, dirs = layout.split_keys(flat[found])
        columns = {
            "query": pa.array(np.nonzero(present)[0].astype(np.int32)),
            "rank": pa.array(np.cumsum(present, axis=1, dtype=np.int32)[present]),
            "id": pa.array(ids),
            "dir": pa.array(dirs.astype(np.int32)),
            "score": pa.array(scores.reshape(-1)[found]),
            "source": payload.column("source"),
        }
        for name in payload.column_names:
            if name != "source":
                columns[_output_name(name)] = payload.column(name)
        return pa.table(columns)

    def search_vector(self, vector: np.ndarray, k: int = 10) -> list[Hit]:
        """Hits of one query vector (dim,)."""
        return self.search_vectors(np.asarray(vector, np.float32).reshape(1, -1), k)[0]

    # -- text -----------------------------------------------------------------------------------
    def search_texts(self, texts: Sequence[str], k: int = 10) -> list[list[Hit]]:
        """Embed ``texts`` with the index's model (needs a text tower) and search them as a batch."""
        if isinstance(texts, str):
            raise InputError("search_texts takes a list of texts; use search_text for one")
        return self.search_vectors(self.encoder.embed_texts(list(texts)), k)

    def search_text(self, text: str, k: int = 10) -> list[Hit]:
        """Hits of one text query (text -> image search with a CLIP model)."""
        return self.search_texts([text], k)[0]

    # -- images ---------------------------------------------------------------------------------
    def search_images(self, images: Sequence[str | Path | Any], k: int = 10) -> list[list[Hit]]:
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
        return self.search_vectors(self.encoder.embed_images(torch.stack(pixels)), k)

    def search_image(self, image: str | Path | Any, k: int = 10) -> list[Hit]:
        """Hits of one image query."""
        return self.search_images([image], k)[0]

    # -- ids ------------------------------------------------------------------------------------
    def search_ids(self, ids: Sequence[int], k: int = 10, dir: int = 0) -> list[list[Hit]]:
        """Search with the stored vectors of indexed rows (``ids`` of ``sources[dir]``)."""
        return self.search_vectors(np.stack([self.vector_of(i, dir) for i in ids]), k)

    def search_id(self, embedding_id: int, k: int = 10, dir: int = 0) -> list[Hit]:
        """Neighbours of an indexed row (the row itself comes first)."""
        return self.search_ids([embedding_id], k, dir)[0]

    def vector_of(self, embedding_id: int, dir: int = 0) -> np.ndarray:
        """The vector of an indexed row: exact from its embedding dir when present, else from the index."""
        key = int(layout.make_keys(np.array([embedding_id]), dir)[0])
        if not self.store.contains(np.array([key]))[0]:
            raise InputError(
                f"id {embedding_id} (source dir #{dir}) is not in the index {self.path}"
            )
        exact = _vector_from_source(
            self.info["sources"][dir], self.info["fingerprint"], embedding_id
        )
        if exact is not None:
            return exact
        return _reconstruct(self.index, key)


def _metadata_dicts(columns: dict[str, list[Any]], rows: int) -> list[dict[str, Any]]:
    """Column lists -> one dict a row, filled column by column (a dict comprehension and C-level
    ``dict.__setitem__`` maps: ~4x faster than ``dict(zip(names, row))`` per row)."""
    if not columns:
        return [{} for _ in range(rows)]
    names = iter(columns)
    first = next(names)
    dicts = [{first: value} for value in columns[first]]
    for name in names:
        deque(map(dict.__setitem__, dicts, repeat(name), columns[name]), maxlen=0)
    return dicts


def _vector_from_source(
    entry: dict[str, Any], fingerprint: str, embedding_id: int
) -> np.ndarray | None:
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from embedsearch.store.embedding_dir import EmbeddingDir
    from embedsearch.store.reader import embedding_matrix

    if not EmbeddingDir.is_embedding_dir(entry["path"]):
        return None  # the index was copied elsewhere: fall back to the index's own codes
    d = EmbeddingDir.open(entry["path"])
    if d.fingerprint != fingerprint or not d.shards:
        return None
    table = ds.dataset([str(p) for p in d.shard_paths()], format="parquet").to_table(
        columns=["embedding"], filter=pc.field("id") == embedding_id
    )
    return embedding_matrix(table.column("embedding"), d.dim)[-1] if table.num_rows else None


def _reconstruct(index: Any, key: int) -> np.ndarray:
    import faiss

    cpu = (
        faiss.index_gpu_to_cpu(index)
        if hasattr(faiss, "index_gpu_to_cpu") and "Gpu" in type(index).__name__
        else index
    )
    try:
        ivf = faiss.extract_index_ivf(cpu)
        ivf.set_direct_map_type(
            faiss.DirectMap.Hashtable
        )  # keys are sparse: a hash map, not an array
    except RuntimeError:
        pass  # IDMap2 keeps its own key -> row map
    try:
        return cpu.reconstruct(key)
    except RuntimeError as e:
        raise InputError(f"the index cannot give back the vector of key {key}: {e}") from e
