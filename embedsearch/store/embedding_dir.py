"""One embedding dir: its manifest, its shards, and atomic commits.

Layout (the contract other tools read):

- ``part-NNNNN.parquet``: columns ``id`` int64, ``source`` string, ``content_hash`` string,
  ``embedding`` fixed_size_list<float32>[dim] (L2-normalised), then carried metadata columns
- ``.embedsearch/manifest.json``: format + version, model spec/options/fingerprint, modality,
  dim, metric, normalised flag, shards (file, rows, sha256, min/max id), totals,
  ``superseded_ids`` (rows replaced by a changed file; not live), ``deleted_ids`` (rows whose
  input is gone; not live; :mod:`embedsearch.store.deletions`), ``next_id``
- ``.embedsearch/errors.parquet``: ``source``, ``reason`` for every input that failed
- ``.embedsearch/lock``, ``.embedsearch/writer.lock``: the commit lock and the run lock

Only shards sit at the top, and everything else in a hidden folder, so the dir reads as a
dataset: ``pd.read_parquet(DIR)``, ``pyarrow.dataset.dataset(DIR)``, HF
``load_dataset("parquet", data_dir=DIR)``, ``pl.read_parquet(DIR + "/*.parquet")`` and DuckDB
``read_parquet('DIR/*.parquet')`` see the shards and nothing of another schema. Dirs of the
first layout (``manifest.json`` and ``errors.parquet`` beside the shards) still open, and are
moved to this layout by the next write.

A commit writes the shard under a temporary name, renames it, rewrites
``errors.parquet`` and finally the manifest, all under an exclusive file lock, so
concurrent ranks never collide and a crash never leaves a shard that counts
without being complete. Shard files the manifest does not list are debris of a
crash and are removed by :meth:`EmbeddingDir.remove_debris`.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from embedsearch.atomic import pid_alive
from embedsearch.errors import FormatError, MismatchError
from embedsearch.store.integrity import sha256_file, shard_problem
from embedsearch.store.manifest import Manifest, ShardInfo, now
from embedsearch.store.runlock import writer_lock

META_DIR = ".embedsearch"
MANIFEST = f"{META_DIR}/manifest.json"
ERRORS = f"{META_DIR}/errors.parquet"
LOCK = f"{META_DIR}/lock"
WRITER_LOCK = f"{META_DIR}/writer.lock"
DAMAGED = f"{META_DIR}/damaged"
# The first layout: manifest, errors and lock beside the shards (read, and migrated on write).
LEGACY_MANIFEST = "manifest.json"
LEGACY_ERRORS = "errors.parquet"
LEGACY_LOCK = ".lock"
SHARD_PATTERN = re.compile(r"^part-(\d{5,})\.parquet$")
TMP_PATTERN = re.compile(r"^\.part\.(\d+)\.[0-9a-f]+\.tmp$")
ERRORS_SCHEMA = pa.schema([("source", pa.string()), ("reason", pa.string())])


def manifest_path(path: str | Path) -> Path:
    """Where the dir's manifest is: the hidden folder, or beside the shards in old dirs."""
    path = Path(path)
    current = path / MANIFEST
    return (
        current
        if current.is_file() or not (path / LEGACY_MANIFEST).is_file()
        else (path / LEGACY_MANIFEST)
    )


class EmbeddingDir:
    """An embedding dir on disk.

    Example:
        >>> d = EmbeddingDir.open("emb/")          # doctest: +SKIP
        >>> d.dim, d.live_rows, len(d.shards)      # doctest: +SKIP
        (512, 2000, 1)
    """

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = path
        self.manifest = manifest

    # -- opening ------------------------------------------------------------------------------
    @staticmethod
    def is_embedding_dir(path: str | Path) -> bool:
        """True when ``path`` holds a ``manifest.json`` of this format."""
        return manifest_path(path).is_file()

    @classmethod
    def open(cls, path: str | Path) -> EmbeddingDir:
        """Open an existing dir; :class:`FormatError` when it is not one."""
        path = Path(path)
        if not path.exists():
            raise FormatError(f"{path} does not exist")
        return cls(path, cls._read_manifest(path))

    @staticmethod
    def _read_manifest(path: Path) -> Manifest:
        where = manifest_path(path)
        if not where.exists():
            raise FormatError(f"{path} is not an embedding dir (no {MANIFEST})")
        return Manifest.read(where)

    @classmethod
    def create_or_open(
        cls,
        path: str | Path,
        *,
        model: str,
        model_options: dict[str, Any],
        fingerprint: str,
        modality: str,
        dim: int,
        source: str,
        preprocess: dict[str, Any] | None = None,
        normalized: bool = True,
    ) -> EmbeddingDir:
        """Open ``path`` for writing (new: an empty manifest); refuse another model or modality.

        ``preprocess``: the image preprocessing the model was fed (open_clip's
        ``preprocess_cfg``), recorded so readers of the dir can see how pixels were made.
        ``normalized``: whether the rows are L2-normalised (imported vectors may not be); a dir
        of one kind refuses rows of the other.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise FormatError(f"--out {path} exists and is not a folder")
        path.mkdir(parents=True, exist_ok=True)
        with _file_lock(path):
            if manifest_path(path).exists():
                existing = cls(path, cls._read_manifest(path))
                existing._check_compatible(fingerprint, model, modality, dim)
                if existing.manifest.normalized != normalized:
                    kind = "unit-length" if existing.manifest.normalized else "unnormalised"
                    raise MismatchError(
                        f"{path} holds {kind} vectors; these are not: use another --out"
                        + (" or --normalize" if existing.manifest.normalized else "")
                    )
                existing._migrate()
                return existing
            if any(entry.name not in (META_DIR, LEGACY_LOCK) for entry in path.iterdir()):
                raise FormatError(
                    f"--out {path} is a non-empty folder that is not an embedding dir"
                )
            manifest = Manifest(
                model=model,
                model_options=model_options,
                fingerprint=fingerprint,
                modality=modality,
                dim=dim,
                source=source,
                preprocess=preprocess,
                normalized=normalized,
            )
            manifest.write(path / MANIFEST)
            return cls(path, manifest)

    def _migrate(self) -> None:
        """Move a first-layout dir's manifest and errors into the hidden folder (lock held).

        Order matters for a crash: errors first (read from either place), then the new
        manifest (preferred once it exists), then the old manifest goes.
        """
        legacy = self.path / LEGACY_MANIFEST
        if not legacy.exists():
            return
        if (self.path / LEGACY_ERRORS).exists():
            os.replace(self.path / LEGACY_ERRORS, self.path / ERRORS)
        if not (self.path / MANIFEST).exists():
            self.manifest.write(self.path / MANIFEST)
        legacy.unlink()
        (self.path / LEGACY_LOCK).unlink(missing_ok=True)

    def _check_compatible(self, fingerprint: str, model: str, modality: str, dim: int) -> None:
        if self.fingerprint != fingerprint:
            raise MismatchError(
                f"{self.path} holds embeddings of model {self.model} "
                f"(fingerprint {self.fingerprint[:12]}); "
                f"refusing to mix in {model} ({fingerprint[:12]}): use another --out "
                "(to move to the new model: re-embed and re-index)"
            )
        if self.modality != modality or self.dim != dim:
            raise MismatchError(
                f"{self.path} holds {self.modality} embeddings of dim {self.dim}; "
                f"this run makes {modality} embeddings of dim {dim}: use another --out"
            )

    # -- properties ---------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self.manifest.dim

    @property
    def fingerprint(self) -> str:
        return self.manifest.fingerprint

    @property
    def model(self) -> str:
        return self.manifest.model

    @property
    def model_options(self) -> dict[str, Any]:
        return dict(self.manifest.model_options)

    @property
    def modality(self) -> str:
        return self.manifest.modality

    @property
    def shards(self) -> list[ShardInfo]:
        return list(self.manifest.shards)

    @property
    def superseded_ids(self) -> set[int]:
        return set(self.manifest.superseded_ids)

    @property
    def deleted_ids(self) -> set[int]:
        return set(self.manifest.deleted_ids or ())

    @property
    def dead_ids(self) -> set[int]:
        """Ids no reader may see: superseded (their file changed) or deleted (their input gone)."""
        return set(self.manifest.superseded_ids).union(self.manifest.deleted_ids or ())

    @property
    def rows(self) -> int:
        return self.manifest.totals.rows

    @property
    def live_rows(self) -> int:
        return self.manifest.totals.live_rows

    @property
    def next_id(self) -> int:
        return self.manifest.next_id

    @property
    def updated(self) -> str:
        """When a commit last changed the dir (its creation time before the first commit)."""
        return self.manifest.updated or self.manifest.created

    def shard_paths(self) -> list[Path]:
        return [self.path / s.file for s in self.shards]

    def column_names(self) -> list[str]:
        """The stored columns (the first shard's schema; the fixed ones before any shard)."""
        paths = self.shard_paths()
        return pq.read_schema(paths[0]).names if paths else ["id", "source", "content_hash"]

    def reload(self) -> None:
        self.manifest = self._read_manifest(self.path)

    def read_errors(self) -> pa.Table:
        """The ``errors.parquet`` table (empty when nothing failed)."""
        path = self.path / ERRORS
        if not path.exists() and not (self.path / MANIFEST).exists():
            path = self.path / LEGACY_ERRORS
        return pq.read_table(path) if path.exists() else ERRORS_SCHEMA.empty_table()

    # -- integrity ----------------------------------------------------------------------------
    def damaged_shards(self) -> list[tuple[str, str]]:
        """``(file, problem)`` for every listed shard that is missing or fails its checksum."""
        found = []
        for info in self.shards:
            problem = shard_problem(self.path / info.file, info.sha256)
            if problem is not None:
                found.append((info.file, problem))
        return found

    def drop_damaged_shards(self) -> list[str]:
        """Unlist damaged shards so a rerun of ``embed`` re-embeds their rows; returns their names.

        The files move to ``.embedsearch/damaged/`` (kept for inspection, out of every
        reader's way); their ids are never reused.
        """
        with self.locked():
            damaged = {name for name, _ in self.damaged_shards()}
            if not damaged:
                return []
            for name in sorted(damaged):
                if (self.path / name).exists():
                    (self.path / DAMAGED).mkdir(parents=True, exist_ok=True)
                    os.replace(self.path / name, self.path / DAMAGED / name)
            m = self.manifest
            m.shards = [s for s in m.shards if s.file not in damaged]
            m.count(m.totals.failures)
            m.updated = now()
            m.write(self.path / MANIFEST)
        return sorted(damaged)

    # -- writing ------------------------------------------------------------------------------
    def record_deleted(self, ids: set[int] | list[int]) -> int:
        """Mark rows as deleted (their input is gone); returns how many were live until now.

        Ids that are already superseded or deleted are left as they are; the rows stay in their
        shards (readers skip them) and their ids are never given out again.
        """
        with self.locked():
            m = self.manifest
            new = set(ids) - self.dead_ids
            if not new:
                return 0
            m.deleted_ids = sorted(set(m.deleted_ids or ()) | new)
            m.count(m.totals.failures)
            m.updated = now()
            m.write(self.path / MANIFEST)
        return len(new)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the dir's exclusive commit lock and see the latest manifest (new layout)."""
        with _file_lock(self.path):
            self.reload()
            self._migrate()
            yield

    def writing(self, job: str | None = None) -> AbstractContextManager[None]:
        """The run lock: one writer (or one job's processes) at a time; see :mod:`.runlock`."""
        return writer_lock(self.path / WRITER_LOCK, self.path, job)

    def remove_debris(self) -> list[str]:
        """Delete shards the manifest does not list and temp files of dead writers."""
        removed = []
        with self.locked():
            listed = {s.file for s in self.shards}
            for entry in self.path.iterdir():
                shard = SHARD_PATTERN.match(entry.name)
                tmp = TMP_PATTERN.match(entry.name)
                if (shard and entry.name not in listed) or (
                    tmp and not pid_alive(int(tmp.group(1)))
                ):
                    entry.unlink(missing_ok=True)
                    removed.append(entry.name)
        return removed

    def temp_shard_path(self) -> Path:
        """A fresh temporary file name for a shard being written by this process."""
        return self.path / f".part.{os.getpid()}.{os.urandom(6).hex()}.tmp"

    def commit(
        self,
        shard_tmp: Path | None,
        ids_range: tuple[int, int] | None,
        rows: int,
        failures: pa.Table,
        succeeded_sources: list[str],
        superseded: list[int],
        reserve_next_id: int,
    ) -> str | None:
        """Publish a written shard and this batch's failures; returns the shard's file name.

        ``reserve_next_id``: ids below it are used by this run; ``next_id`` never goes back.
        Errors of sources that now succeeded are dropped; new failures replace old ones.
        """
        with self.locked():
            m = self.manifest
            name = None
            if shard_tmp is not None and rows and ids_range is not None:
                numbers = [
                    int(match.group(1))
                    for e in self.path.iterdir()
                    if (match := SHARD_PATTERN.match(e.name))
                ]
                name = f"part-{max(numbers, default=-1) + 1:05d}.parquet"
                info = ShardInfo(name, rows, sha256_file(shard_tmp), ids_range[0], ids_range[1])
                os.replace(shard_tmp, self.path / name)
                m.shards.append(info)
            errors = self._merge_errors(failures, succeeded_sources)
            m.superseded_ids = sorted(set(m.superseded_ids) | set(superseded))
            m.count(errors.num_rows)
            if name is not None:  # only a run that used ids needs them reserved
                m.next_id = max(m.next_id, reserve_next_id)
            m.updated = now()
            m.write(self.path / MANIFEST)
        return name

    def _merge_errors(self, failures: pa.Table, succeeded_sources: list[str]) -> pa.Table:
        old = self.read_errors()
        if failures.num_rows == 0 and not succeeded_sources:
            return old
        import pyarrow.compute as pc

        drop = pa.array(
            list(succeeded_sources) + failures.column("source").to_pylist(), pa.string()
        )
        keep = old.filter(pc.invert(pc.is_in(old.column("source"), value_set=drop)))
        merged = pa.concat_tables([keep, failures.cast(ERRORS_SCHEMA)])
        tmp = self.path / META_DIR / f".errors.{os.getpid()}.tmp"
        pq.write_table(merged, tmp)
        os.replace(tmp, self.path / ERRORS)
        return merged


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    (path / META_DIR).mkdir(exist_ok=True)
    with open(path / LOCK, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
