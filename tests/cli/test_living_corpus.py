"""A living corpus through the real CLI: a file deleted from the folder -> `embed` -> `index
--append` -> `query` no longer returns it, for every index kind; `delete` takes dedup's
remove.txt."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image

KINDS = ["flat", "hnsw", "ivf", "ivfsq", "ivfpq"]
EMBED = ("--model", "simclr:resnet18", "--image-size", "32", "--workers", "0")


def _cli(*args) -> tuple[int, str]:
    """Run the real entry point outside a test's capsys (module fixtures); (exit code, stderr)."""
    from embedsearch.cli.app import main

    err = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            code = int(e.code or 0)
    assert code == 0, err.getvalue()
    return code, err.getvalue()


def _ok(result):
    assert result.exit_code == 0, result.stderr
    return result


def _photos(folder, n) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        pixels = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(pixels).resize((40, 40), Image.Resampling.BICUBIC).save(
            folder / f"img_{i:02d}.png"
        )


@pytest.fixture(scope="module")
def living(tmp_path_factory):
    """40 photos embedded and indexed once per kind; then img_03 is deleted from the folder, the
    folder embedded again and every index appended to."""
    root = tmp_path_factory.mktemp("living")
    _photos(root / "photos", 40)
    shutil.copy(root / "photos/img_03.png", root / "query.png")
    _cli("embed", root / "photos", *EMBED, "--out", root / "emb")
    before = {}
    for kind in KINDS:
        _cli("index", root / "emb", "--out", root / kind, "--kind", kind)
        before[kind] = _query(root / kind, root / "query.png")
    (root / "photos/img_03.png").unlink()
    _, embed_log = _cli("embed", root / "photos", *EMBED, "--out", root / "emb")
    for kind in KINDS:
        _cli("index", root / "emb", "--out", root / kind, "--append")
    return root, before, embed_log


def _query(index, image, k=5) -> list[str]:
    from embedsearch.index import Searcher

    return [h.source for h in Searcher.open(index).search_image(image, k=k)]


@pytest.mark.parametrize("kind", KINDS)
def test_the_photo_was_the_first_hit_before_it_was_deleted(living, kind) -> None:
    root, before, _ = living
    assert before[kind][0] == str((root / "photos/img_03.png").resolve())


def test_embed_reports_the_deleted_photo(living) -> None:
    _, _, embed_log = living
    assert re.search(r"deleted \(inputs gone\)\s*│\s*1\s*│", embed_log)


@pytest.mark.parametrize("kind", KINDS)
def test_query_no_longer_returns_the_deleted_photo(living, kind, run_cli) -> None:
    root, _, _ = living
    result = run_cli(
        "query", root / kind, "--image", root / "query.png", "-k", "5", "--format", "json"
    )
    assert result.exit_code == 0, result.stderr
    sources = [h["source"] for h in json.loads(result.stdout)[0]["hits"]]
    assert str((root / "photos/img_03.png").resolve()) not in sources


@pytest.mark.parametrize("kind", KINDS)
def test_query_still_returns_k_hits_after_the_deletion(living, kind, run_cli) -> None:
    root, _, _ = living
    result = run_cli(
        "query", root / kind, "--image", root / "query.png", "-k", "5", "--format", "json"
    )
    assert len(json.loads(result.stdout)[0]["hits"]) == 5


def test_dedup_remove_txt_flows_back_into_the_index(tmp_path, run_cli) -> None:
    _photos(tmp_path / "photos", 12)
    for i in (1, 2):  # exact copies that dedup should remove
        shutil.copy(tmp_path / f"photos/img_{i:02d}.png", tmp_path / f"photos/copy_{i}.png")
    _ok(run_cli("embed", tmp_path / "photos", *EMBED, "--out", tmp_path / "emb"))
    _ok(run_cli("index", tmp_path / "emb", "--out", tmp_path / "idx", "--kind", "flat"))
    _ok(run_cli("dedup", tmp_path / "emb", "--out", tmp_path / "dups"))
    removed = (tmp_path / "dups/remove.txt").read_text().splitlines()
    _ok(run_cli("delete", tmp_path / "emb", "--sources-from", tmp_path / "dups/remove.txt"))
    _ok(run_cli("index", tmp_path / "emb", "--out", tmp_path / "idx", "--append"))
    queries = [tmp_path / "photos" / name for name in ("img_01.png", "img_02.png")]
    found = {source for query in queries for source in _query(tmp_path / "idx", query, k=12)}
    assert removed  # the copies at least
    assert not found & set(removed)


def test_delete_by_id_then_append_drops_the_row(tmp_path, run_cli) -> None:
    _photos(tmp_path / "photos", 6)
    _ok(run_cli("embed", tmp_path / "photos", *EMBED, "--out", tmp_path / "emb"))
    _ok(run_cli("index", tmp_path / "emb", "--out", tmp_path / "idx", "--kind", "hnsw"))
    _ok(run_cli("delete", tmp_path / "emb", "--ids", "2"))
    _ok(run_cli("index", tmp_path / "emb", "--out", tmp_path / "idx", "--append"))
    result = _ok(run_cli("query", tmp_path / "idx", "--id", "0", "-k", "6", "--format", "json"))
    assert 2 not in [h["id"] for h in json.loads(result.stdout)[0]["hits"]]


def test_delete_of_ids_that_are_not_there_is_a_one_line_error(tmp_path, run_cli) -> None:
    _photos(tmp_path / "photos", 3)
    _ok(run_cli("embed", tmp_path / "photos", *EMBED, "--out", tmp_path / "emb"))
    result = run_cli("delete", tmp_path / "emb", "--ids", "77")
    assert (result.exit_code, result.stderr.count("error:")) == (2, 1)


def test_delete_with_a_bad_id_is_a_usage_error(tmp_path, run_cli) -> None:
    _photos(tmp_path / "photos", 3)
    _ok(run_cli("embed", tmp_path / "photos", *EMBED, "--out", tmp_path / "emb"))
    result = run_cli("delete", tmp_path / "emb", "--ids", "3,x")
    assert result.exit_code == 2 and "'x'" in result.stderr
