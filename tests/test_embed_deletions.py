"""``embed`` notices inputs gone since the last run and records their rows as deleted."""

from __future__ import annotations

import os

import pytest

from embedsearch.embedding import embed
from embedsearch.store import EmbeddingDir
from embedsearch.store.reader import iter_batches


def _run(source, out, **kwargs):
    return embed(
        source, model="simclr:resnet18", out=out, image_size=32, workers=0, batch_size=8, **kwargs
    )


def _live_sources(out) -> set[str]:
    return {s for b in iter_batches(out, ["source"]) for s in b.column(0).to_pylist()}


def test_a_file_gone_from_the_folder_is_deleted(tmp_path, make_images) -> None:
    paths = make_images(tmp_path / "photos", 4)
    _run(tmp_path / "photos", tmp_path / "emb")
    paths[2].unlink()
    _run(tmp_path / "photos", tmp_path / "emb")
    assert str(paths[2].resolve()) not in _live_sources(tmp_path / "emb")


def test_the_rerun_reports_how_many_rows_it_deleted(tmp_path, make_images) -> None:
    paths = make_images(tmp_path / "photos", 4)
    _run(tmp_path / "photos", tmp_path / "emb")
    paths[0].unlink()
    paths[1].unlink()
    assert len(_run(tmp_path / "photos", tmp_path / "emb").gone.ids) == 2


def test_a_file_that_no_longer_decodes_is_not_deleted(tmp_path, make_images) -> None:
    paths = make_images(tmp_path / "photos", 3)
    _run(tmp_path / "photos", tmp_path / "emb")
    paths[1].write_bytes(b"half a jpeg")
    _run(tmp_path / "photos", tmp_path / "emb")
    assert EmbeddingDir.open(tmp_path / "emb").deleted_ids == set()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads folders without permission")
def test_rows_under_a_folder_that_cannot_be_listed_are_not_deleted(tmp_path, make_images) -> None:
    make_images(tmp_path / "photos", 2)
    make_images(tmp_path / "photos" / "sub", 2, seed=1)
    _run(tmp_path / "photos", tmp_path / "emb")
    (tmp_path / "photos" / "sub").chmod(0)
    try:
        _run(tmp_path / "photos", tmp_path / "emb")
    finally:
        (tmp_path / "photos" / "sub").chmod(0o755)
    assert EmbeddingDir.open(tmp_path / "emb").deleted_ids == set()


def test_rows_of_another_folder_in_the_same_dir_are_kept(tmp_path, make_images) -> None:
    make_images(tmp_path / "a", 2)
    make_images(tmp_path / "b", 2, seed=1)
    _run(tmp_path / "a", tmp_path / "emb")
    _run(tmp_path / "b", tmp_path / "emb")
    assert EmbeddingDir.open(tmp_path / "emb").live_rows == 4


def test_no_prune_keeps_the_rows_of_gone_files(tmp_path, make_images) -> None:
    paths = make_images(tmp_path / "photos", 3)
    _run(tmp_path / "photos", tmp_path / "emb")
    paths[0].unlink()
    _run(tmp_path / "photos", tmp_path / "emb", prune=False)
    assert EmbeddingDir.open(tmp_path / "emb").live_rows == 3


def test_a_deleted_file_put_back_gets_a_new_id(tmp_path, make_images) -> None:
    paths = make_images(tmp_path / "photos", 2)
    _run(tmp_path / "photos", tmp_path / "emb")
    data = paths[0].read_bytes()
    paths[0].unlink()
    _run(tmp_path / "photos", tmp_path / "emb")
    paths[0].write_bytes(data)
    _run(tmp_path / "photos", tmp_path / "emb")
    ids = [r["id"] for b in iter_batches(tmp_path / "emb", ["id"]) for r in b.to_pylist()]
    assert sorted(ids) == [1, 2]


def _lines(path, lines) -> None:
    path.write_text("".join(f"{line}\n" for line in lines))


def test_a_line_gone_from_a_text_file_is_reported_but_kept(tmp_path) -> None:
    pytest.importorskip("open_clip")
    _lines(tmp_path / "docs.txt", ["a cat", "a dog", "a bird"])
    embed(tmp_path / "docs.txt", model="tiny", out=tmp_path / "emb")
    _lines(tmp_path / "docs.txt", ["a cat", "a bird"])
    summary = embed(tmp_path / "docs.txt", model="tiny", out=tmp_path / "emb")
    assert (summary.gone.ids, summary.gone.recorded) == ([1], False)


def test_prune_deletes_a_line_gone_from_a_text_file(tmp_path) -> None:
    pytest.importorskip("open_clip")
    _lines(tmp_path / "docs.txt", ["a cat", "a dog", "a bird"])
    embed(tmp_path / "docs.txt", model="tiny", out=tmp_path / "emb")
    _lines(tmp_path / "docs.txt", ["a cat", "a bird"])
    embed(tmp_path / "docs.txt", model="tiny", out=tmp_path / "emb", prune=True)
    assert _live_sources(tmp_path / "emb") == {"a cat", "a bird"}


def test_rows_under_an_unlistable_subfolder_are_kept_by_find_gone(tmp_path) -> None:
    from embedsearch.data.gone import find_gone
    from embedsearch.data.sources import ImageFolderSource, Item

    class Listing(ImageFolderSource):  # what the walk yields when sub/ cannot be listed
        def __iter__(self):
            yield Item(0, f"{self.root}/a.jpg", path=f"{self.root}/a.jpg")
            yield Item(1, f"{self.root}/sub", path=f"{self.root}/sub", error="cannot list")

    (tmp_path / "photos").mkdir()
    root = (tmp_path / "photos").resolve()
    stored = {f"{root}/a.jpg": [0], f"{root}/sub/b.jpg": [1], f"{root}/c.jpg": [2]}
    assert find_gone(Listing(root), stored).ids == [2]


def test_a_table_with_unreadable_rows_is_not_pruned(tmp_path) -> None:
    from embedsearch.data.gone import find_gone
    from embedsearch.data.sources import open_source

    (tmp_path / "t.csv").write_bytes(b"text\na cat\nbad \xff byte\n")
    gone = find_gone(open_source(tmp_path / "t.csv", text_col="text"), {"a dog": [0]}, prune=True)
    assert (gone.ids, gone.recorded) == ([0], False)


def test_a_table_row_gone_is_deleted_with_prune(tmp_path) -> None:
    from embedsearch.data.gone import find_gone
    from embedsearch.data.sources import open_source

    (tmp_path / "t.csv").write_text("text\na cat\n")
    gone = find_gone(open_source(tmp_path / "t.csv", text_col="text"), {"a dog": [0]}, prune=True)
    assert (gone.ids, gone.recorded) == ([0], True)
