"""The base homes: dir staging/publishing and typed JSON documents refuse bad input in one line."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from embedsearch.atomic import publish_dir, staged_dir
from embedsearch.documents import JsonDocument, optional_field
from embedsearch.errors import FormatError


@dataclasses.dataclass(kw_only=True)
class Note(JsonDocument):
    FORMAT = "test-note"
    VERSION = 2

    text: str
    tag: str | None = optional_field()


def test_published_dir_replaces_the_old_one(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with staged_dir(out) as staged:
        (staged / "new.txt").write_text("new")
        publish_dir(staged, out)
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]


def test_unpublished_staging_leaves_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), staged_dir(tmp_path / "out") as staged:
        (staged / "half.txt").write_text("half")
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_document_keeps_unknown_keys_when_rewritten(tmp_path: Path) -> None:
    data = {"format": "test-note", "format_version": 2, "text": "hi", "future": [1]}
    (tmp_path / "n.json").write_text(json.dumps(data))
    Note.read(tmp_path / "n.json").write(tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text()) == data


def test_optional_field_is_left_out_while_none() -> None:
    assert "tag" not in Note(text="hi").to_json()


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json", "is not valid JSON"),
        ("[1]", "is not a JSON object"),
        ('{"format": "other"}', "is not an test-note file"),
        ('{"format": "test-note", "format_version": 3, "text": "x"}', "upgrade embedsearch"),
        ('{"format": "test-note", "format_version": 2}', "is malformed"),
    ],
)
def test_bad_document_is_one_format_error_naming_the_file(tmp_path, content, message) -> None:
    (tmp_path / "n.json").write_text(content)
    with pytest.raises(FormatError, match=message) as caught:
        Note.read(tmp_path / "n.json")
    assert str(tmp_path / "n.json") in str(caught.value)


def test_missing_document_is_a_format_error(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="is missing"):
        Note.read(tmp_path / "absent.json")
