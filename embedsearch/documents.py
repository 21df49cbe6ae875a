"""Typed, versioned JSON documents: the one reader/writer for ``manifest.json``, ``index.json``
and a run dir's ``config.json``.

Each on-disk JSON contract is a dataclass subclassing :class:`JsonDocument` that names its
``FORMAT`` and ``VERSION``. Reading checks both and turns every way a file can be wrong
(missing, not JSON, not an object, another format, a newer version, fields of the wrong
shape) into one :class:`~embedsearch.errors.FormatError` that names the file. Keys this
release does not know are kept in ``extra`` and written back unchanged, so a dir written by
a newer minor release survives a rewrite by this one, and the JSON on disk keeps its key order
(the dataclass field order).

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(kw_only=True)
    ... class Note(JsonDocument):
    ...     FORMAT = "example-note"
    ...     VERSION = 1
    ...     text: str
    >>> Note.from_json({"format": "example-note", "format_version": 1, "text": "hi", "x": 2})
    Note(extra={'x': 2}, text='hi')
    >>> Note(text="hi").to_json()
    {'format': 'example-note', 'format_version': 1, 'text': 'hi'}
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from embedsearch.atomic import write_json_atomic
from embedsearch.errors import FormatError

D = TypeVar("D", bound="JsonDocument")


@dataclasses.dataclass(kw_only=True)
class JsonDocument:
    """Base class of the typed JSON files; subclasses add fields and set the class constants."""

    FORMAT: ClassVar[str]
    VERSION: ClassVar[int]

    extra: dict[str, Any] = dataclasses.field(default_factory=dict, repr=True)

    @classmethod
    def from_json(cls: type[D], data: Any, *, where: str = "the document") -> D:
        """A parsed JSON value -> the typed document; :class:`FormatError` naming ``where``."""
        if not isinstance(data, dict):
            raise FormatError(f"{where} is not a JSON object")
        if data.get("format") != cls.FORMAT:
            raise FormatError(
                f"{where} is not an {cls.FORMAT} file (format {data.get('format')!r})"
            )
        version = data.get("format_version", 0)
        if not isinstance(version, int) or version > cls.VERSION:
            raise FormatError(
                f"{where} has format version {version!r}; this embedsearch reads up to "
                f"{cls.VERSION}: upgrade embedsearch"
            )
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        extra = {k: v for k, v in data.items() if k not in names | {"format", "format_version"}}
        try:
            return cls(**known, extra=extra)
        except (TypeError, ValueError) as e:
            raise FormatError(f"{where} is malformed: {e}") from e

    def to_json(self) -> dict[str, Any]:
        """The document as a JSON-ready dict: format, version, fields in order, then extras."""
        body = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name != "extra" and not (value is None and f.metadata.get(_OMIT_NONE)):
                body[f.name] = _plain(value)
        return {"format": self.FORMAT, "format_version": self.VERSION, **body, **self.extra}

    @classmethod
    def read(cls: type[D], path: str | Path) -> D:
        """Load ``path``; :class:`FormatError` (naming it) for anything but a valid document."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as e:
            raise FormatError(f"{path} is missing") from e
        except (OSError, UnicodeDecodeError) as e:
            raise FormatError(f"{path} is unreadable: {e}") from e
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise FormatError(f"{path} is not valid JSON ({e})") from e
        return cls.from_json(data, where=str(path))

    def write(self, path: str | Path) -> None:
        """Write the document atomically (temp file, fsync, rename)."""
        write_json_atomic(path, self.to_json())


_OMIT_NONE = "omit_when_none"


def optional_field() -> Any:
    """A field that defaults to ``None`` and is left out of the JSON while it is ``None``.

    For keys that only some documents carry (a key written as ``null`` is not the same file).
    """
    return dataclasses.field(default=None, metadata={_OMIT_NONE: True})


def _plain(value: Any) -> Any:
    """Nested dataclasses (e.g. a manifest's shard entries) -> dicts, for ``json.dump``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
