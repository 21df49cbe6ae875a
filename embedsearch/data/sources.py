"""Input sources for ``embed``: an image folder, a text file, or a table of texts or image paths.

A source enumerates :class:`Item` s in a stable order (sorted paths, file lines,
table rows); ``Item.index`` is that position and makes ids reproducible across
reruns and ranks. Inputs that are bad already at listing time (a line that is not
UTF-8, an empty cell) come out as items with an ``error``.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedsearch.choices import MODALITIES
from embedsearch.data.decode import IMAGE_EXTENSIONS, file_kind, is_image_file
from embedsearch.data.tables import is_table, read_table_batches, require_column
from embedsearch.data.webdataset import (
    Sample,
    TarMember,
    expand_shards,
    is_webdataset,
    iter_samples,
    read_text,
    sample_fields,
)
from embedsearch.errors import InputError

# Shard columns a table's own columns must not overwrite (they are carried as input_<name>).
RESERVED_COLUMNS = frozenset({"id", "source", "content_hash", "embedding"})


@dataclass
class Item:
    """One input: an image file (``path``), a shard member (``member``) or a text, plus
    carried metadata."""

    index: int
    source: str
    path: str | None = None
    member: TarMember | None = None
    text: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class FolderEntry:
    """One image-named entry of a folder: ``path`` as the OS spells it, or why it is unusable."""

    path: str
    error: str | None = None


def walk_image_folder(folder: str | Path) -> Iterator[FolderEntry]:
    """Every image-named entry under ``folder``, recursively, in a stable sorted order.

    Each directory's files come first (sorted), then its subdirectories (sorted), as
    ``os.walk`` did. Symlinked directories are followed; one already read (a loop, or a
    second link to it) is listed with its reason instead. Entries that cannot be used —
    a FIFO, socket or device named ``*.jpg``, a broken link, a directory that cannot be
    listed — come out with an ``error`` instead of being skipped silently or hanging.

    Example:
        >>> [e.error for e in walk_image_folder("photos")]   # doctest: +SKIP
        [None, None, 'not a regular file (FIFO)']
    """
    seen: dict[tuple[int, int], str] = {}
    yield from _walk(os.fspath(folder), seen)


def _walk(directory: str, seen: dict[tuple[int, int], str]) -> Iterator[FolderEntry]:
    try:
        info = os.stat(directory)
        key = (info.st_dev, info.st_ino)
        if key in seen:
            yield FolderEntry(directory, f"directory already read as {display_path(seen[key])}")
            return
        seen[key] = directory
        with os.scandir(directory) as scan:
            entries = sorted(scan, key=lambda e: e.name)
    except OSError as e:
        yield FolderEntry(directory, f"cannot list directory: {e.strerror or e}")
        return
    subdirs = []
    for entry in entries:
        try:
            is_dir = entry.is_dir()  # follows symlinks
        except OSError:
            is_dir = False
        if is_dir:
            subdirs.append(entry.path)
        elif is_image_file(entry.name):
            yield _file_entry(entry)
    for subdir in subdirs:
        yield from _walk(subdir, seen)


def _file_entry(entry: os.DirEntry) -> FolderEntry:
    try:
        mode = entry.stat().st_mode  # follows symlinks: a link to a photo is a photo
    except OSError as e:
        broken = entry.is_symlink() and e.errno == errno.ENOENT
        return FolderEntry(entry.path, "broken symbolic link" if broken else str(e.strerror))
    if not stat.S_ISREG(mode):
        return FolderEntry(entry.path, f"not a regular file ({file_kind(mode)})")
    return FolderEntry(entry.path)


def iter_image_files(folder: str | Path) -> Iterator[Path]:
    """The usable image files under ``folder`` (see :func:`walk_image_folder`), in sorted order.

    Example:
        >>> [p.name for p in iter_image_files("photos")]   # doctest: +SKIP
        ['a.jpg', 'b.png']
    """
    for entry in walk_image_folder(folder):
        if entry.error is None:
            yield Path(entry.path)


def display_path(path: str | Path) -> str:
    """``path`` as a valid Unicode string, for the ``source`` column and messages.

    File names are bytes on POSIX; one that is not UTF-8 reaches Python with surrogate
    escapes, which Parquet (UTF-8) cannot store. Each such byte is written as ``\\xNN``
    (Python's ``backslashreplace``); names that are valid UTF-8 are unchanged.
    :func:`source_path` turns the result back into the OS path.

    Example:
        >>> display_path(os.fsdecode(b"photos/caf\\xe9.jpg"))
        'photos/caf\\\\xe9.jpg'
        >>> display_path("photos/café.jpg")
        'photos/café.jpg'
    """
    text = os.fspath(path)
    raw = text.encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "backslashreplace")


_ESCAPED_BYTE = re.compile(r"\\x([89a-f][0-9a-f])")


def source_path(source: str) -> str:
    """The OS path (``str``, surrogate-escaped as ``os.fsdecode`` gives) of a stored ``source``.

    Reverses :func:`display_path`: a source that exists as written is that file; otherwise
    each ``\\xNN`` (NN ≥ 80) is the raw byte NN. Use it on ``remove.txt`` lines and
    ``source`` values before touching files: ``os.remove(source_path(line))``.

    Example:
        >>> source_path("photos/caf\\\\xe9.jpg") == os.fsdecode(b"photos/caf\\xe9.jpg")
        True
    """
    if os.path.lexists(source):
        return source
    return _ESCAPED_BYTE.sub(lambda m: chr(0xDC00 + int(m.group(1), 16)), source)


class Source:
    """Base class: ``modality``, ``description``, ``count()`` and iteration over items."""

    modality: str = "image"
    description: str = ""

    def count(self) -> int:
        return sum(1 for _ in self)

    def __iter__(self) -> Iterator[Item]:
        raise NotImplementedError


class ImageFolderSource(Source):
    """Every image file under a folder; ``source`` is the absolute path."""

    modality = "image"

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.description = str(self.root)

    def __iter__(self) -> Iterator[Item]:
        for index, entry in enumerate(walk_image_folder(self.root)):
            yield Item(index, display_path(entry.path), path=entry.path, error=entry.error)


class TextFileSource(Source):
    """One document per line of a text file; blank lines are skipped (they keep their index)."""

    modality = "text"

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()
        self.description = str(self.path)

    def __iter__(self) -> Iterator[Item]:
        with open(self.path, "rb") as f:
            for index, raw in enumerate(f):
                line = raw.rstrip(b"\r\n")
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError as e:
                    yield Item(
                        index,
                        f"{self.path}:{index + 1}",
                        error=f"line is not UTF-8 text ({e.reason})",
                    )
                    continue
                if text.strip():
                    yield Item(index, text, text=text, metadata={"line": index + 1})


class TableSource(Source):
    """Rows of a table: ``text_col`` gives texts, or ``image_col`` gives image paths.

    Relative image paths are resolved against the table's folder. The other columns are
    carried into the shards as metadata.
    """

    def __init__(self, path: Path, text_col: str | None, image_col: str | None) -> None:
        if bool(text_col) == bool(image_col):
            raise InputError(f"table {path}: pass exactly one of --text-col or --image-col")
        self.path = path.resolve()
        self.column = str(text_col or image_col)  # exactly one is set (checked above)
        self.modality = "text" if text_col else "image"
        self.description = f"{self.path} [{self.column}]"
        option = "--text-col" if text_col else "--image-col"
        columns = require_column(self.path, self.column, option)
        self.metadata_columns = [c for c in columns if c != self.column]

    def count(self) -> int:
        return sum(block.num_rows for block in read_table_batches(self.path))

    def __iter__(self) -> Iterator[Item]:
        index = 0
        for block in read_table_batches(self.path):
            for row_in_block, row in enumerate(block.batch.to_pylist()):
                item = self._item(index, row)
                error = block.errors.get(row_in_block)
                if error is not None:
                    item = Item(index, f"{self.path}:row {index + 1}", metadata=item.metadata)
                    item.error = f"row {index + 1}: {error}"
                yield item
                index += 1

    def _item(self, index: int, row: dict[str, Any]) -> Item:
        value = row.get(self.column)
        metadata = {
            (f"input_{k}" if k in RESERVED_COLUMNS else k): row.get(k)
            for k in self.metadata_columns
        }
        if value is None or (isinstance(value, str) and not value.strip()):
            return Item(
                index,
                f"{self.path}:row {index + 1}",
                metadata=metadata,
                error=f"empty {self.column!r} in row {index + 1}",
            )
        value = str(value)
        if self.modality == "text":
            return Item(index, value, text=value, metadata=metadata)
        path = Path(value).expanduser()
        path = path if path.is_absolute() else self.path.parent / path
        return Item(index, str(path), path=str(path), metadata=metadata)


class WebDatasetSource(Source):
    """The samples of WebDataset tar shards: the image (or, for text, the ``.txt``) of each.

    ``source`` is ``shard.tar/key``. The ``.json`` sidecar's fields become metadata columns
    (the first sample with a sidecar fixes which; the full JSON text is kept in ``json``, so
    a field only later samples have is not lost) and the ``.txt`` caption is kept in ``txt``.
    A sample without the member to embed, or with a sidecar that is not JSON, is an error
    row (``errors.parquet``), never a crash.
    """

    def __init__(self, spec: str, modality: str = "image") -> None:
        self.shards = expand_shards(spec)
        self.modality = modality
        self.description = os.path.abspath(os.path.expanduser(spec))
        self.columns = self._columns()

    def _columns(self) -> list[str]:
        for shard in self.shards:
            for sample in iter_samples(shard):
                if "json" in sample.members:
                    try:
                        names = list(sample_fields(sample))
                    except InputError:
                        continue
                    return ["txt", *names]
        return ["txt"]

    def count(self) -> int:
        return sum(1 for shard in self.shards for _ in iter_samples(shard))

    def __iter__(self) -> Iterator[Item]:
        index = 0
        for shard in self.shards:
            for sample in iter_samples(shard):
                yield self._item(index, sample)
                index += 1

    def _item(self, index: int, sample: Sample) -> Item:
        try:
            fields = sample_fields(sample)
            caption = sample.members.get("txt")
            fields["txt"] = read_text(caption) if caption is not None else None
        except InputError as e:
            return Item(index, sample.source, error=str(e))
        metadata = {
            (f"input_{k}" if k in RESERVED_COLUMNS else k): fields.get(k) for k in self.columns
        }
        if self.modality == "text":
            text = fields["txt"]
            if not text or not text.strip():
                return Item(index, sample.source, metadata=metadata, error="no caption (.txt)")
            return Item(index, sample.source, text=text, metadata=metadata)
        image = sample.image()
        if image is None:
            found = ", ".join(sorted(sample.members)) or "nothing"
            return Item(
                index, sample.source, metadata=metadata, error=f"no image member (has {found})"
            )
        return Item(index, sample.source, member=image, metadata=metadata)


@dataclass
class RankSlice:
    """Every ``world``-th item of a source starting at ``rank``: one rank's disjoint share."""

    source: Source
    rank: int = 0
    world: int = 1

    def __iter__(self) -> Iterator[Item]:
        for item in self.source:
            if item.index % self.world == self.rank:
                yield item


def open_source(
    path: str | Path,
    modality: str | None = None,
    text_col: str | None = None,
    image_col: str | None = None,
) -> Source:
    """Pick the source type for ``path`` and check it against ``modality`` when given.

    Example:
        >>> open_source("photos/").modality            # doctest: +SKIP
        'image'
        >>> open_source("docs.txt").modality           # doctest: +SKIP
        'text'
        >>> open_source("shards/{00000..00009}.tar").modality   # doctest: +SKIP
        'image'
    """
    if modality is not None and modality not in MODALITIES:
        raise InputError(f"unknown --modality {modality!r}: use {' or '.join(MODALITIES)}")
    if is_webdataset(path):
        return WebDatasetSource(str(path), modality or "image")
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if path.is_dir():
        source: Source = ImageFolderSource(path)
    elif is_table(path):
        if not text_col and not image_col:
            if modality is None:
                raise InputError(
                    f"table {path}: pass --text-col or --image-col to say what to embed"
                )
            raise InputError(f"table {path}: pass --{modality}-col to name the column to embed")
        source = TableSource(path, text_col, image_col)
    elif path.suffix.lower() in IMAGE_EXTENSIONS:
        raise InputError(f"{path} is a single image; embed its folder instead")
    else:
        source = TextFileSource(path)
    if modality is not None and modality != source.modality:
        raise InputError(
            f"{path} holds {source.modality} inputs but --modality {modality} was given"
        )
    return source
