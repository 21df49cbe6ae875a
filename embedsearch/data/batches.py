"""Turning items into model-ready batches: read, hash, skip what is stored, decode, preprocess.

For images this runs inside DataLoader workers, so decoding overlaps the model.
Each item goes to the worker chosen by a hash of its source, so the same source
(even listed twice) is always judged by the same worker's view of what is stored.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from embedsearch.data.decode import DecodeError, decode_image, read_image_bytes
from embedsearch.data.sources import Item
from embedsearch.store.reader import KnownRows


def content_hash(data: bytes) -> str:
    """Hash of raw input bytes (file contents or UTF-8 text), stored in ``content_hash``."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass
class Batch:
    """A model batch plus the bookkeeping for the rows it becomes."""

    indices: list[int] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    metadata: list[dict[str, Any]] = field(default_factory=list)
    superseded: list[int] = field(default_factory=list)
    pixels: torch.Tensor | None = None
    texts: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    skipped: int = 0

    @property
    def size(self) -> int:
        """Items this batch accounts for (embedded + failed + skipped)."""
        return len(self.indices) + len(self.failures) + self.skipped

    def add_ok(self, item: Item, digest: str, superseded: list[int]) -> None:
        self.indices.append(item.index)
        self.sources.append(item.source)
        self.hashes.append(digest)
        self.metadata.append(item.metadata)
        self.superseded.extend(superseded)


class ImageBatches(torch.utils.data.IterableDataset):
    """Batches of preprocessed images from image items (one DataLoader worker's share each)."""

    def __init__(
        self, items: Iterable[Item], known: KnownRows, preprocess: Callable, batch_size: int
    ) -> None:
        # ``items`` must be re-iterable and picklable (a Source or a RankSlice), not a generator:
        # every worker iterates it and keeps its own share.
        super().__init__()
        self.items = items
        self.known = known
        self.preprocess = preprocess
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[Batch]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        batch, tensors = Batch(), list[torch.Tensor]()
        for item in self.items:
            if workers > 1 and zlib.crc32(item.source.encode()) % workers != worker:
                continue
            self._add(item, batch, tensors)
            # Cap the items per batch so skips and failures still report progress.
            if len(tensors) >= self.batch_size or batch.size >= 4 * self.batch_size:
                yield _finish(batch, tensors)
                batch, tensors = Batch(), []
        if batch.size:
            yield _finish(batch, tensors)

    def _add(self, item: Item, batch: Batch, tensors: list[torch.Tensor]) -> None:
        if item.error:
            batch.failures.append((item.source, item.error))
            return
        try:
            if item.member is not None:  # a WebDataset sample: read by offset from its shard
                data = item.member.read()
            else:
                data = read_image_bytes(item.path or item.source)  # bounded; never blocks on a FIFO
        except DecodeError as e:
            batch.failures.append((item.source, str(e)))
            return
        digest = content_hash(data)
        stored, superseded = self.known.claim(item.source, digest)
        if stored:
            batch.skipped += 1
            return
        try:
            # Full decode, no JPEG draft: the model must see open_clip's pixels (issue 12).
            image = decode_image(data)
            tensors.append(self.preprocess(image))
        except DecodeError as e:
            # A changed file that no longer decodes keeps its old row live.
            self.known.ids_by_source.setdefault(item.source, []).extend(superseded)
            batch.failures.append((item.source, str(e)))
            return
        batch.add_ok(item, digest, superseded)


def identity_collate(batch: Any) -> Any:
    """DataLoader collate for already-built batches (module-level so it pickles)."""
    return batch


def _finish(batch: Batch, tensors: list[torch.Tensor]) -> Batch:
    batch.pixels = torch.stack(tensors) if tensors else None
    return batch


def text_batches(items: Iterable[Item], known: KnownRows, batch_size: int) -> Iterator[Batch]:
    """Batches of texts (tokenised later by the encoder); stored texts are skipped."""
    batch = Batch()
    for item in items:
        if item.error:
            batch.failures.append((item.source, item.error))
        else:
            text = item.text or ""
            digest = content_hash(text.encode("utf-8"))
            stored, superseded = known.claim(item.source, digest)
            if stored:
                batch.skipped += 1
            else:
                batch.add_ok(item, digest, superseded)
                batch.texts.append(text)
        if len(batch.texts) >= batch_size or batch.size >= 4 * batch_size:
            yield batch
            batch = Batch()
    if batch.size:
        yield batch
