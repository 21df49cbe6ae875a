"""``index.json`` as written by the release before the typed ``IndexInfo`` reads, re-writes and
opens unchanged (tests/index/data/index_v1: a flat index of two source dirs, the second
appended, written by commit 2c2fb0f; its source dirs are gone, as after a copy)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from embedsearch.errors import FormatError
from embedsearch.index import Searcher
from embedsearch.index.layout import IndexInfo, SourceEntry, read_info, write_info

V1 = Path(__file__).parent / "data" / "index_v1"


def test_index_json_of_the_last_release_reads_and_rewrites_to_the_same_dict(tmp_path) -> None:
    on_disk = json.loads((V1 / "index.json").read_text())
    info = read_info(V1)
    assert isinstance(info.sources[1], SourceEntry)
    assert info.sources[1].indexed_rows == 20
    assert info.recall.recall_at_k == 1.0
    assert info.append_seconds == 0.113
    assert info.extra == {}
    assert info.to_json() == on_disk
    assert list(info.to_json()) == list(on_disk)  # same key order too
    copy = tmp_path / "copy"
    shutil.copytree(V1, copy)
    write_info(copy, info)
    rewritten = json.loads((copy / "index.json").read_text())
    assert rewritten.pop("updated") != ""
    on_disk.pop("updated")
    assert rewritten == on_disk


def test_keys_a_newer_release_adds_survive_and_optional_keys_stay_absent() -> None:
    data = json.loads((V1 / "index.json").read_text())
    data["shard_plan"] = {"shards": 4}
    for name in ("updated", "append_seconds"):
        del data[name]
    info = IndexInfo.from_json(data)
    assert info.extra == {"shard_plan": {"shards": 4}}
    assert info.to_json() == data


def test_an_index_dir_of_the_last_release_opens_and_answers() -> None:
    s = Searcher.open(V1, device="cpu")
    assert (s.ntotal, s.dim) == (80, 8)
    assert s.info == json.loads((V1 / "index.json").read_text())
    (top, *_) = s.search_id(3, k=5)
    assert (top.id, top.dir, top.source) == (3, 0, "img/3.png")
    assert top.metadata == {"content_hash": "h3", "label": 3, "caption": "cap 3"}
    other = s.search_id(4, k=1, dir=1)[0]
    assert (other.id, other.dir, other.source) == (4, 1, "other/4.png")
    assert other.metadata == {"content_hash": "h4", "label": 4}  # its dir has no captions
    table = s.search_table(s.vector_of(4, dir=1)[None, :], k=3)
    assert table.column("source").to_pylist()[0] == "other/4.png"
    np.testing.assert_allclose(np.linalg.norm(s.vector_of(3)), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(format="other"), "not an embedsearch-index"),
        (lambda d: d.update(format_version=99), "upgrade embedsearch"),
        (lambda d: d.update(sources=[{"path": "/x"}]), "malformed"),
    ],
)
def test_a_bad_index_json_is_one_format_error_naming_the_file(tmp_path, change, message) -> None:
    copy = tmp_path / "idx"
    shutil.copytree(V1, copy)
    data = json.loads((copy / "index.json").read_text())
    change(data)
    (copy / "index.json").write_text(json.dumps(data))
    with pytest.raises(FormatError, match=message) as caught:
        read_info(copy)
    assert "index.json" in str(caught.value)
