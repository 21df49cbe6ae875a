"""One embedding dir: its manifest, its shards, and atomic commits.

Layout (the contract other tools read):

- ``part-NNNNN.parquet``: columns ``id`` int64, ``source`` string, ``content_hash`` string,
  ``embedding`` fixed_size_list<float32>[dim] (L2-normalised), then carried metadata columns
- ``manifest.json``: format + version, model spec/options/fingerprint, modality, dim, metric,
  normalised flag, shards (file, rows, sha256, min/max id), totals, ``superseded_ids``
  (rows replaced by a changed file; not live), ``next_id``
- ``errors.parquet``: ``source``, ``reason`` for every input that could not be embedded

A commit writes the shard under a temporary name, renames it, rewrites
``errors.parquet`` and finally the manifest, all under an exclusive file lock, so
concurrent ranks never collide and a crash never leaves a shard that counts
without being complete. Shard files the manifest does not list are debris of a
crash and are removed by :meth:`EmbeddingDir.remove_debris`.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from embedsearch.errors import FormatError, MismatchError
from embedsearch.store.manifest import Manifest, ShardInfo, now

MANIFEST = "manifest.json"
ERRORS = "errors.parquet"
LOCK = ".lock"
SHARD_PATTERN = re.compile(r"^part-(\d{5,})\.parquet$")
TMP_PATTERN = re.compile(r"^\.part\.(\d+)\.[0-9a-f]+\.tmp$")
ERRORS_SCHEMA = pa.schema([("source", pa.string()), ("reason", pa.string())])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        return (Path(path) / MANIFEST).is_file()

    @classmethod
    def open(cls, path: str | Path) -> EmbeddingDir:
        """Open an existing dir; :class:`FormatError` when it is not one."""
        path = Path(path)
        if not path.exists():
            raise FormatError(f"{path} does not exist")
        return cls(path, cls._read_manifest(path))

    @staticmethod
    def _read_manifest(path: Path) -> Manifest:
        if not (path / MANIFEST).exists():
            raise FormatError(f"{path} is not an embedding dir (no {MANIFEST})")
        return Manifest.read(path / MANIFEST)

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
    ) -> EmbeddingDir:
        """Open ``path`` for writing (new: an empty manifest); refuse another model or modality."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise FormatError(f"--out {path} exists and is not a folder")
        path.mkdir(parents=True, exist_ok=True)
        with _file_lock(path):
            if (path / MANIFEST).exists():
                existing = cls(path, cls._read_manifest(path))
                existing._check_compatible(fingerprint, model, modality, dim)
                return existing
            if any(entry.name != LOCK for entry in path.iterdir()):
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
            )
            manifest.write(path / MANIFEST)
            return cls(path, manifest)

    def _check_compatible(self, fingerprint: str, model: str, modality: str, dim: int) -> None:
        if self.fingerprint != fingerprint:
            raise MismatchError(
                f"{self.path} holds embeddings of model {self.model} "
                f"(fingerprint {self.fingerprint[:12]}); "
                f"refusing to mix in {model} ({fingerprint[:12]}): use another --out"
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

    def reload(self) -> None:
        self.manifest = self._read_manifest(self.path)

    def read_errors(self) -> pa.Table:
        """The ``errors.parquet`` table (empty when nothing failed)."""
        path = self.path / ERRORS
        return pq.read_table(path) if path.exists() else ERRORS_SCHEMA.empty_table()

    # -- writing ------------------------------------------------------------------------------
    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the dir's exclusive lock and see the latest manifest."""
        with _file_lock(self.path):
            self.reload()
            yield

    def remove_debris(self) -> list[str]:
        """Delete shards the manifest does not list and temp files of dead writers."""
        removed = []
        with self.locked():
            listed = {s.file for s in self.shards}
            for entry in self.path.iterdir():
                shard = SHARD_PATTERN.match(entry.name)
                tmp = TMP_PATTERN.match(entry.name)
                if (shard and entry.name not in listed) or (
                    tmp and not _pid_alive(int(tmp.group(1)))
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
                info = ShardInfo(name, rows, _sha256(shard_tmp), ids_range[0], ids_range[1])
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
        tmp = self.path / f".errors.{os.getpid()}.tmp"
        pq.write_table(merged, tmp)
        os.replace(tmp, self.path / ERRORS)
        return merged


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path / LOCK, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
