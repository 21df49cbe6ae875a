"""WebDataset tar shards as input: the layout img2dataset writes, read without unpacking.

A shard is a tar file whose members are grouped into samples by key: ``000123.jpg``,
``000123.txt`` and ``000123.json`` are one sample with key ``000123`` (the key is the member
path up to the first dot of its file name; a sample's members are consecutive). Shards are
named one by one, by a brace range (``data/{00000..00099}.tar``, the notation img2dataset
and webdataset use) or by a quoted glob (``'data/*.tar'``).

The standard library's :mod:`tarfile` reads them: it is all that is needed to walk the
headers of an uncompressed tar and to read one member's bytes by offset, and it adds no
dependency (the ``webdataset`` package pulls in its own pipeline and decoders, and its
iterators decode in the reading process, while ``embed`` decodes in DataLoader workers).
In an uncompressed shard a sample costs a header read; its image bytes are read only by
the worker that embeds it (:class:`TarMember` is an offset and a size). Compressed shards
(``.tar.gz``) work too, but are decompressed in full by every reader.

Example:
    >>> [p.name for p in expand_shards("data/{00000..00002}.tar")]   # doctest: +SKIP
    ['00000.tar', '00001.tar', '00002.tar']
"""

from __future__ import annotations

import glob
import json
import os
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from embedsearch.data.decode import (
    IMAGE_EXTENSIONS,
    MAX_IMAGE_BYTES,
    DecodeError,
    decode_image,
    load_image,
)
from embedsearch.errors import InputError

SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")
_BRACES = re.compile(r"\{(\d+)\.\.(\d+)\}")


def is_webdataset(spec: str | Path) -> bool:
    """True when ``spec`` names tar shards (one file, a brace range or a glob).

    Example:
        >>> is_webdataset("data/{00000..00099}.tar"), is_webdataset("photos/")
        (True, False)
    """
    return str(spec).lower().endswith(SHARD_SUFFIXES)


def expand_braces(spec: str) -> list[str]:
    """Every name a brace range spells, zero-padded as written (several ranges multiply).

    Example:
        >>> expand_braces("d/{008..010}.tar")
        ['d/008.tar', 'd/009.tar', 'd/010.tar']
    """
    match = _BRACES.search(spec)
    if match is None:
        return [spec]
    first, last = match.group(1), match.group(2)
    if int(last) < int(first):
        raise InputError(f"{spec}: the range {{{first}..{last}}} counts down")
    width = len(first)
    head, tail = spec[: match.start()], spec[match.end() :]
    names = []
    for number in range(int(first), int(last) + 1):
        names.extend(expand_braces(f"{head}{number:0{width}d}{tail}"))
    return names


def expand_shards(spec: str | Path) -> list[Path]:
    """The shard files ``spec`` names, in order; a missing one is an error naming it.

    Example:
        >>> expand_shards("missing-{0..1}.tar")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        embedsearch.errors.InputError: shard missing-0.tar does not exist (2 of 2 ... missing)
    """
    text = os.path.expanduser(str(spec))
    if any(c in text for c in "*?["):
        names = sorted(glob.glob(text))
        if not names:
            raise InputError(f"no shards match {spec}")
    else:
        names = expand_braces(text)
    paths = [Path(name) for name in names]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise InputError(
            f"shard {missing[0]} does not exist ({len(missing)} of {len(paths)} named by "
            f"{spec} are missing)"
        )
    return [p.resolve() for p in paths]


@dataclass(frozen=True)
class TarMember:
    """Where one member's bytes are: ``size`` bytes at ``offset`` in an uncompressed shard,
    or the bytes themselves (``data``) when the shard is compressed."""

    shard: str
    name: str
    offset: int
    size: int
    data: bytes | None = None

    def __str__(self) -> str:
        return f"{self.shard}/{self.name}"

    def read(self) -> bytes:
        """The member's bytes; :class:`DecodeError` when the shard changed or is unreadable."""
        if self.data is not None:
            return self.data
        if self.size > MAX_IMAGE_BYTES:
            raise DecodeError(f"file too large ({self.size:,} bytes; limit {MAX_IMAGE_BYTES:,})")
        try:
            with open(self.shard, "rb") as f:
                f.seek(self.offset)
                data = f.read(self.size)
        except OSError as e:
            raise DecodeError(f"cannot read {self}: {e.strerror or e}") from e
        if len(data) != self.size:
            raise DecodeError(f"{self}: shard is shorter than its header says (truncated?)")
        return data


@dataclass
class Sample:
    """One WebDataset sample: its key, its shard, and its members by extension."""

    shard: Path
    key: str
    members: dict[str, TarMember] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """``shard.tar/key``: the ``source`` column of this sample's row."""
        return f"{self.shard}/{self.key}"

    def image(self) -> TarMember | None:
        """The first member whose extension is an image's (``jpg``, ``png``, ``webp`` …)."""
        for ext, member in self.members.items():
            if _is_image(ext):
                return member
        return None


_TEXT_BYTES = 1 << 20  # captions and json sidecars larger than this are refused, not read
_INLINE_BYTES = 1 << 16  # non-image members up to this size are read while walking a shard


def _is_image(ext: str) -> bool:
    return "." + ext.rsplit(".", 1)[-1] in IMAGE_EXTENSIONS


def split_key(name: str) -> tuple[str, str]:
    """``dir/000123.seg.png`` -> (``dir/000123``, ``seg.png``): key and extension.

    Example:
        >>> split_key("a/000123.seg.png"), split_key("README")
        (('a/000123', 'seg.png'), ('README', ''))
    """
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def iter_samples(shard: Path) -> Iterator[Sample]:
    """The samples of one shard in tar order, streaming (one sample's headers in memory).

    Members that are not regular files (directories, links) are ignored; a shard that
    is not a tar, or is cut short, raises :class:`InputError` naming it.
    """
    compressed = not str(shard).lower().endswith(".tar")
    current: Sample | None = None
    try:
        # A compressed shard can only be streamed; an uncompressed one is read header by header.
        with tarfile.open(shard, "r|*") if compressed else tarfile.open(shard, "r:") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                key, ext = split_key(info.name)
                if current is None or key != current.key:
                    if current is not None:
                        yield current
                    current = Sample(shard, key)
                data = None
                if compressed or (info.size <= _INLINE_BYTES and not _is_image(ext)):
                    # Captions and sidecars are read now, from the open file, by every reader
                    # (each is small); images are read later by offset, by the one worker
                    # that embeds them.
                    handle = tar.extractfile(info)
                    data = handle.read() if handle is not None else b""
                current.members[ext] = TarMember(
                    str(shard), info.name, info.offset_data, info.size, data
                )
    except (tarfile.TarError, EOFError, OSError) as e:
        raise InputError(f"shard {shard} is not a readable tar file: {e}") from e
    if current is not None:
        yield current


def read_text(member: TarMember) -> str:
    """A caption/json member as UTF-8 text; :class:`DecodeError` with the reason otherwise."""
    if member.size > _TEXT_BYTES:
        raise DecodeError(f"{member}: {member.size:,} bytes is too large for a caption")
    try:
        return member.read().decode("utf-8")
    except UnicodeDecodeError as e:
        raise DecodeError(f"{member}: not UTF-8 text ({e.reason})") from e


def sample_fields(sample: Sample) -> dict[str, Any]:
    """The ``.json`` sidecar's fields, with the full JSON text kept under ``json``.

    Scalars become columns as they are; lists and objects are kept as JSON text. Raises
    :class:`DecodeError` for a sidecar that is not a JSON object.
    """
    member = sample.members.get("json")
    if member is None:
        return {}
    text = read_text(member)
    try:
        fields = json.loads(text)
    except json.JSONDecodeError as e:
        raise DecodeError(f"{member}: not JSON ({e.msg})") from e
    if not isinstance(fields, dict):
        raise DecodeError(f"{member}: the json sidecar is not an object")
    row = {
        k: (v if v is None or isinstance(v, (str, int, float, bool)) else json.dumps(v))
        for k, v in fields.items()
    }
    row["json"] = text
    return row


def load_pair_image(ref: str | TarMember) -> Image.Image:
    """Decode a training pair's image, whether a file path or a member of a shard."""
    if isinstance(ref, TarMember):
        return decode_image(ref.read())
    return load_image(ref)
