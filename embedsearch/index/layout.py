"""The index dir on disk: file names, ``index.json`` (:class:`IndexInfo`) and faiss keys.

Layout (a contract: ``query``, ``dedup`` and Python read it; see ``indexes/README.md``):

- ``index.faiss``: the faiss index; its ids are *keys* (below)
- ``index.json``: :class:`IndexInfo` -- kind, factory string, search params, measured recall@k,
  latency, memory, build seconds, ntotal, dim, model spec/options/fingerprint, ``sources`` (one
  :class:`SourceEntry` per embedding dir), ``metadata_files`` and ``index_sha256`` (the
  checksum of ``index.faiss``, verified by :func:`read_index` before faiss sees a byte)
- ``index.ivfdata`` (``storage: ondisk`` only): the inverted lists of a merged index too large for
  ``--max-memory``, memory-mapped on open (:mod:`~embedsearch.index.storage`)
- ``meta-NNNNN.arrow``: key -> ``id``, ``dir``, ``source``, ``content_hash`` + metadata
  columns, one file per indexed embedding dir and build/append step
- ``model/``: when the model is a run dir, its ``config.json`` + ``model.safetensors`` (hard
  links where possible), so text and image queries work with the run dir moved or gone
- ``excluded-keys.npy`` (only when ``excluded_rows``): deleted rows an HNSW or refined index
  cannot remove, skipped by every search (:mod:`embedsearch.index.exclusions`)

A key is ``(dir << 40) | id``: the embedding id of a row of ``sources[dir]``. Rows of the
first dir have key == embedding id; rows of later dirs stay distinct even when their ids
collide with the first dir's.

Example:
    >>> make_keys(np.array([3, 4]), 1).tolist()
    [1099511627779, 1099511627780]
    >>> [a.tolist() for a in split_keys(np.array([1099511627779]))]
    [[3], [1]]
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedsearch.atomic import recover_dir
from embedsearch.documents import JsonDocument, optional_field
from embedsearch.errors import FormatError, InputError
from embedsearch.index import storage
from embedsearch.store.integrity import sha256_file
from embedsearch.store.manifest import now
from embedsearch.store.runlock import writer_lock

FORMAT = "embedsearch-index"
FORMAT_VERSION = 1
INDEX_FILE = "index.faiss"
INFO_FILE = "index.json"
MODEL_COPY = "model"  # the carried run dir (config.json + model.safetensors), when the model is one
META_TEMPLATE = "meta-{:05d}.arrow"
KEY_BITS = 40
ID_LIMIT = 1 << KEY_BITS


def make_keys(ids: np.ndarray, dir_number: int) -> np.ndarray:
    """Embedding ids of ``sources[dir_number]`` -> faiss keys (refuses ids >= 2**40)."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= ID_LIMIT):
        raise InputError(
            f"embedding ids must lie in [0, 2**{KEY_BITS}); got {int(ids.min())}..{int(ids.max())}"
        )
    return (np.int64(dir_number) << np.int64(KEY_BITS)) | ids


def split_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """faiss keys -> (embedding ids, dir numbers)."""
    keys = np.asarray(keys, dtype=np.int64)
    return keys & np.int64(ID_LIMIT - 1), keys >> np.int64(KEY_BITS)


@dataclass(kw_only=True)
class SourceEntry:
    """One embedding dir an index holds rows of (``index.json["sources"][dir]``)."""

    path: str
    fingerprint: str
    model: str
    modality: str = ""
    rows: int = 0
    indexed_rows: int = 0
    next_id: int = 0
    shards: int = 0
    manifest_updated: str | None = None


@dataclass(kw_only=True)
class MetadataFileEntry:
    """One ``meta-NNNNN.arrow`` file: the rows of ``sources[dir]`` one build/append step added."""

    file: str
    dir: int
    rows: int


@dataclass(kw_only=True)
class RecallInfo:
    """recall@``k`` measured on ``queries`` held-out rows, and the ``target`` it was tuned to."""

    k: int
    target: float
    recall_at_k: float | None = None
    met: bool | None = None
    queries: int = 0


@dataclass(kw_only=True)
class IvfDataEntry:
    """The lists file of an ``ondisk`` index: its name, size and checksum, and the path faiss
    recorded for it when it was written (replaced by its real place on open)."""

    file: str
    bytes: int
    sha256: str
    written_as: str


# Keys that today's writer only puts into index.json once they have a value.
_OMITTED_WHEN_EMPTY = (
    "updated",
    "append_seconds",
    "removed_keys",
    "similarity",
    "concentration",
    "score_percentiles",
    "index_sha256",
    "model_trained",
    "model_copy",
    "model_digest",
    "excluded_rows",
    "excluded_sha256",
)


@dataclass(kw_only=True)
class IndexInfo(JsonDocument):
    """``index.json``: what the index is, how it was tuned and measured, and what it holds.

    Example:
        >>> info = IndexInfo.read("indexes/photos/index.json")   # doctest: +SKIP
        >>> info.factory, info.recall.recall_at_k, info.sources[0].path   # doctest: +SKIP
        ('IVF1024,SQ8', 0.962, '/data/emb')
    """

    FORMAT = FORMAT
    VERSION = FORMAT_VERSION

    kind: str
    factory: str
    metric: str = "inner_product"
    nlist: int = 0
    search_params: dict[str, int] = field(default_factory=dict)
    recall: RecallInfo
    latency: dict[str, float] = field(default_factory=dict)
    memory_bytes: int = 0
    estimated_bytes: int = 0
    max_memory: int = 0
    build_seconds: float = 0.0
    ntotal: int = 0
    dim: int
    model: str
    model_options: dict[str, Any] = field(default_factory=dict)
    fingerprint: str
    modality: str = ""
    key_bits: int = KEY_BITS
    sources: list[SourceEntry] = field(default_factory=list)
    metadata_files: list[MetadataFileEntry] = field(default_factory=list)
    created: str = field(default_factory=now)
    notes: list[str] = field(default_factory=list)
    tuning: list[dict[str, Any]] = field(default_factory=list)
    updated: str | None = None
    append_seconds: float | None = None
    removed_keys: list[int] = field(default_factory=list)
    index_sha256: str | None = None  # absent in indexes written before it was recorded
    # what a score is: "cosine", or "centred cosine" when the index removes the corpus mean
    # (embedsearch.index.centring; None: written before either existed, i.e. cosine); the mean
    # pairwise cosine of a sample that decided it
    similarity: str | None = None
    concentration: float | None = None
    # what a high score is here: percentiles of the scores of sample rows' neighbours
    # (embedsearch.index.scores)
    score_percentiles: dict[str, dict[str, float]] = field(default_factory=dict)
    # as in the manifest: trained weights or not; the run dir carried inside the index dir
    # (MODEL_COPY) and its files' digest, so queries are embedded from anywhere, after a move
    model_trained: bool | None = None
    model_copy: str | None = None
    model_digest: str | None = None

    # rows the index holds but skips at search time (kinds that cannot remove rows): their keys
    # are in excluded-keys.npy, checked against this checksum (embedsearch.index.exclusions)
    excluded_rows: int | None = None
    excluded_sha256: str | None = None

    # how index.faiss is stored and opened (embedsearch.index.storage): "memory" (None: written
    # before it was recorded) or "ondisk" with the lists in ``ivf_data``
    storage: str | None = optional_field()
    ivf_data: IvfDataEntry | None = optional_field()
    # a build merged from shards (embedsearch.index.merge): shard count and step seconds
    shards: dict[str, Any] | None = optional_field()

    def __post_init__(self) -> None:
        # from_json hands nested entries over as dicts
        if isinstance(self.recall, dict):
            self.recall = RecallInfo(**self.recall)
        if isinstance(self.ivf_data, dict):
            self.ivf_data = IvfDataEntry(**self.ivf_data)
        self.sources = [_entry(SourceEntry, s) for s in self.sources]
        self.metadata_files = [_entry(MetadataFileEntry, m) for m in self.metadata_files]

    def to_json(self) -> dict[str, Any]:
        """The dict written to disk: as today's writer, keys without a value yet are left out."""
        data = super().to_json()
        for name in _OMITTED_WHEN_EMPTY:
            if data.get(name) in (None, [], {}):
                del data[name]
        return data

    def metadata_file_names(self) -> list[str]:
        """The ``meta-NNNNN.arrow`` files, in the order their rows were added."""
        return [m.file for m in self.metadata_files]


def _entry(cls: Any, value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return value
    if not isinstance(value, dict):
        raise TypeError(f"{cls.__name__} entry is not an object: {value!r}")
    return cls(**value)


def is_index_dir(path: str | Path) -> bool:
    """True when ``path`` holds an ``index.json`` of this format."""
    info = Path(path) / INFO_FILE
    if not info.is_file():
        return False
    try:
        return bool(json.loads(info.read_text()).get("format") == FORMAT)
    except (OSError, json.JSONDecodeError, AttributeError):
        return False


def read_info(path: str | Path) -> IndexInfo:
    """Load and check ``index.json``; :class:`FormatError` for anything that is not an index dir."""
    path = Path(path)
    if not path.exists():
        recover_dir(path)  # a publish killed between its two renames: the old dir comes back
    if not path.exists():
        raise FormatError(f"{path} does not exist")
    if not (path / INFO_FILE).is_file():
        raise FormatError(f"{path} is not an index dir (no {INFO_FILE})")
    info = IndexInfo.read(path / INFO_FILE)
    if not (path / INDEX_FILE).is_file():
        raise FormatError(f"{path} is missing {INDEX_FILE}")
    return info


def verify_index_file(path: Path, info: IndexInfo) -> None:
    """Refuse an ``index.faiss`` whose bytes are not those ``index.json`` recorded.

    Damaged bytes can load and silently answer wrong (a row missing from its own neighbour
    list); the hash is streamed (memory flat). Indexes written before the checksum was recorded
    are not checked.
    """
    if info.index_sha256 is not None:
        _require_checksum(path, info, sha256_file(path / INDEX_FILE))


def _require_checksum(path: Path, info: IndexInfo, sha256: str) -> None:
    if info.index_sha256 is not None and sha256 != info.index_sha256:
        raise FormatError(
            f"{path / INDEX_FILE} is corrupt (its checksum differs from the one in {INFO_FILE}); "
            "refusing to use it: rebuild the index with `embedsearch index ... --overwrite`"
        )


def read_index(path: Path, info: IndexInfo, *, mmap: bool | None = None) -> Any:
    """The verified faiss index of the index dir at ``path``, opened as ``info.storage`` says.

    ``mmap``: memory-map an IVF ``index.faiss`` (True), read it whole (False, e.g. to add rows
    to it), or decide by its size against the memory available (None; see
    :mod:`~embedsearch.index.storage`, which also says what is verified when).

    Example:
        >>> index = read_index(Path("idx"), read_info("idx"))  # doctest: +SKIP
    """
    import faiss

    index_file = path / INDEX_FILE
    if info.storage == storage.ONDISK:
        if mmap is False:
            raise InputError(
                f"{path} keeps its lists on disk (a merged index larger than --max-memory): "
                "rows cannot be added to it; rebuild it with the new rows"
            )
        return _read_ondisk(path, info)
    if mmap is None:
        size = storage.file_size(index_file)
        mmap = storage.should_mmap(size, info.nlist > 0, storage.memory_available())
    if mmap:
        storage.check_size(index_file, info.memory_bytes or None)
        return storage.read_mapped(index_file)
    verify_index_file(path, info)
    return faiss.read_index(str(index_file))


def _read_ondisk(path: Path, info: IndexInfo) -> Any:
    if info.ivf_data is None:
        raise FormatError(f"{path / INFO_FILE} says storage ondisk but names no lists file")
    header = (path / INDEX_FILE).read_bytes()  # small: the quantizer and the list table
    _require_checksum(path, info, hashlib.sha256(header).hexdigest())
    data = path / info.ivf_data.file
    storage.check_size(data, info.ivf_data.bytes)
    return storage.read_ondisk(header, data, info.ivf_data.written_as)


def verify_index_dir(path: str | Path) -> IndexInfo:
    """Check every byte of the index files against ``index.json``'s checksums (streamed), the
    memory-mapped ones included, which opening checks only for size (``info --verify``).

    Example:
        >>> verify_index_dir("indexes/photos").storage   # doctest: +SKIP
        'ondisk'
    """
    path = Path(path)
    info = read_info(path)
    verify_index_file(path, info)
    if info.ivf_data is not None:
        storage.check_size(path / info.ivf_data.file, info.ivf_data.bytes)
        storage.verify_bulk(path / info.ivf_data.file, info.ivf_data.sha256)
    return info


def record_index_checksum(path: Path, info: IndexInfo) -> None:
    """Put the checksum of the written ``path/index.faiss`` into ``info`` (before index.json)."""
    info.index_sha256 = sha256_file(path / INDEX_FILE)


def record_ivf_data(path: Path, info: IndexInfo) -> None:
    """Put the size and checksum of an ``ondisk`` index's written lists file into ``info``; its
    bytes count in ``memory_bytes`` (the index's size) too."""
    if info.ivf_data is None:
        return
    data = path / info.ivf_data.file
    info.ivf_data.bytes = data.stat().st_size
    info.ivf_data.sha256 = sha256_file(data)
    info.memory_bytes += info.ivf_data.bytes


def write_info(path: Path, info: IndexInfo) -> None:
    """Stamp ``updated`` and write ``index.json`` atomically."""
    info.updated = now()
    info.write(path / INFO_FILE)


def check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse to replace something that is not ours, or an index without ``overwrite``."""
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    if not any(out.iterdir()):
        return
    if not is_index_dir(out):
        raise InputError(f"--out {out} is a non-empty folder that is not an index dir")
    if not overwrite:
        raise InputError(
            f"--out {out} is already an index: use --append to add rows or --overwrite to rebuild"
        )


def index_writer_lock(out: Path) -> AbstractContextManager[None]:
    """The run lock of the index dir ``out``: a file beside it (the dir itself is swapped).

    Held by a build and by an append for their whole run, so two writers of one index dir
    never publish over each other's rows; the second is refused with the holder named.
    """
    return writer_lock(out.parent / f".{out.name}.lock", out)
