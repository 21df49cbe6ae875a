"""``import_vectors``: vectors made elsewhere in, an embedding dir out (``embedsearch import``).

Two streaming passes over the input (:mod:`embedsearch.data.vector_files`): the first checks
every row (NaN/inf, ragged rows, the dim) and whether the rows are unit-length, so a bad row
is refused with its number before anything is written; the second writes shards through the
store's :class:`~embedsearch.store.writer.ShardWriter`.

The model is a label (``external:NAME``): nothing can embed a text or image query into that
space, so ``query --text/--image`` refuse in one line, while ``--id`` and ``--vector`` work.
``normalize`` L2-normalises every row; without it the rows are stored as given and the manifest
records ``normalized`` only when every row already has unit length. As with ``embed``, a rerun
adds only what is new: a row whose source and vector are stored already is skipped, and a source
whose vector changed gets a new id while its old row is superseded.

Example:
    >>> s = import_vectors("clip.npy", out="emb/", model="external:laion-vitb32",
    ...                    sources_file="paths.txt", normalize=True)        # doctest: +SKIP
    >>> s.imported, s.dim, s.normalized                                    # doctest: +SKIP
    (100000, 512, True)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedsearch.choices import EXTERNAL_MODEL_PREFIX, Modality
from embedsearch.data.vector_files import check_block, iter_vector_blocks
from embedsearch.errors import InputError
from embedsearch.progress import NullProgress, Progress
from embedsearch.store.embedding_dir import EmbeddingDir
from embedsearch.store.integrity import NORM_TOLERANCE
from embedsearch.store.reader import load_known_rows
from embedsearch.store.writer import DEFAULT_SHARD_ROWS, ShardWriter


@dataclass
class ImportSummary:
    """What one import did."""

    out: Path
    imported: int = 0
    already_present: int = 0
    superseded: int = 0
    dim: int = 0
    normalized: bool = False


@dataclass
class _Checked:
    rows: int
    dim: int
    unit: bool


def import_vectors(
    source: str | Path,
    *,
    out: str | Path,
    model: str,
    dim: int | None = None,
    normalize: bool = False,
    modality: Modality = "image",
    vector_col: str | None = None,
    source_col: str | None = None,
    sources_file: str | Path | None = None,
    ids_file: str | Path | None = None,
    shard_rows: int = DEFAULT_SHARD_ROWS,
    progress: Progress | None = None,
) -> ImportSummary:
    """Import ``source`` (``.npy``, table or embedding dir) into the embedding dir ``out``."""
    if not model.startswith(EXTERNAL_MODEL_PREFIX) or model == EXTERNAL_MODEL_PREFIX:
        raise InputError(
            f"--model {model!r}: imported vectors are labelled {EXTERNAL_MODEL_PREFIX}NAME "
            "(the name of the model that made them)"
        )
    progress = progress or NullProgress()
    options = dict(
        vector_col=vector_col, source_col=source_col, sources_file=sources_file, ids_file=ids_file
    )
    checked = _check(source, dim, normalize, options, progress)
    emb_dir = EmbeddingDir.create_or_open(
        out,
        model=model,
        model_options={},
        fingerprint=model,
        modality=modality,
        dim=checked.dim,
        source=f"import of {Path(source).expanduser().resolve()}",
        normalized=normalize or checked.unit,
    )
    summary = ImportSummary(Path(out), dim=checked.dim, normalized=normalize or checked.unit)
    with emb_dir.writing():
        emb_dir.remove_debris()
        known = load_known_rows(emb_dir)
        writer = ShardWriter(emb_dir, emb_dir.next_id + checked.rows, shard_rows=shard_rows)
        next_id = emb_dir.next_id
        progress.start("importing", checked.rows)
        try:
            for block in iter_vector_blocks(source, **options):  # type: ignore[arg-type]
                vectors = _normalised(block.vectors) if normalize else block.vectors
                hashes = block.hashes or [_vector_hash(v) for v in vectors]
                keep, superseded = [], []
                for row, (name, digest) in enumerate(zip(block.sources, hashes, strict=True)):
                    present, replaced = known.claim(name, digest)
                    if not present:
                        keep.append(row)
                        superseded += replaced
                rows = np.array(keep, np.int64)
                writer.add(
                    np.arange(next_id, next_id + len(rows)),
                    [block.sources[i] for i in keep],
                    [hashes[i] for i in keep],
                    vectors[rows],
                    {k: [v[i] for i in keep] for k, v in block.metadata.items()},
                    superseded,
                )
                next_id += len(rows)
                summary.imported += len(rows)
                summary.already_present += len(block.sources) - len(rows)
                summary.superseded += len(superseded)
                progress.advance(len(block.sources))
            writer.close()
        except BaseException:
            writer.abort()
            raise
        finally:
            progress.stop()
    return summary


def _check(
    source: str | Path, dim: int | None, normalize: bool, options: dict, progress: Progress
) -> _Checked:
    """The first pass: every row checked, rows counted, unit length noted."""
    rows, unit = 0, True
    where = str(source)
    progress.start("checking", None)
    for block in iter_vector_blocks(source, **options):
        check_block(block.vectors, block.first_row, dim, where)
        dim = block.vectors.shape[1]
        norms = np.linalg.norm(block.vectors.astype(np.float64), axis=1)
        if normalize and (norms == 0).any():
            row = block.first_row + int(np.flatnonzero(norms == 0)[0])
            raise InputError(f"{where}: row {row} is all zeros: it cannot be normalised")
        unit = unit and bool((np.abs(norms - 1.0) <= NORM_TOLERANCE).all())
        rows += len(block.vectors)
        progress.advance(len(block.vectors))
    progress.stop()
    if rows == 0 or dim is None or dim == 0:
        raise InputError(f"{where} holds no vectors")
    return _Checked(rows, dim, unit)


def _normalised(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _vector_hash(vector: np.ndarray) -> str:
    """``content_hash`` of an imported row: the hash of its float32 bytes as given."""
    return hashlib.blake2b(
        np.ascontiguousarray(vector, np.float32).tobytes(), digest_size=16
    ).hexdigest()
