"""dedup reads text corpora, index dirs and runs from the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from embedsearch import find_duplicates
from embedsearch.errors import FormatError


def test_text_corpus_exact_and_near_duplicate_documents(tmp_path) -> None:
    from embedsearch.embedding import embed

    docs = [
        f"report number {i} about the {w} harvest in the northern valley"
        for i, w in enumerate(["apple", "pear", "grain", "rice", "olive", "grape", "corn", "bean"])
    ]
    lines = docs + [
        docs[2],
        docs[5] + "!",
        "a completely different sentence about rockets and space",
    ]
    (tmp_path / "docs.txt").write_text("\n".join(lines) + "\n")
    embed(tmp_path / "docs.txt", model="tiny-clip", out=tmp_path / "emb", modality="text")
    result = find_duplicates(tmp_path / "emb", out=tmp_path / "out", threshold=0.999)
    pairs = pd.read_parquet(result.out / "pairs.parquet")
    exact = pairs[pairs.exact]
    assert list(zip(exact.source_a, exact.source_b, strict=False)) == [(docs[2], docs[2])]
    removed = (result.out / "remove.txt").read_text().splitlines()
    assert docs[2] in removed
    assert len(removed) == result.to_remove
    kept = (result.out / "keep.txt").read_text().splitlines()
    assert len(kept) + len(removed) == len(lines)
    assert docs[2] in kept


def test_index_dir_input_uses_the_exact_vectors_of_its_embedding_dirs(tmp_path, gen) -> None:
    from embedsearch.index import build_index

    x = gen.random_unit(500, 16, seed=3)
    for i in range(12):
        x[400 + i] = gen.near_copy(x[i], 0.97, seed=50 + i)
    emb = gen.write_dir(tmp_path / "emb", x)
    build_index([emb], tmp_path / "index", kind="flat")
    direct = find_duplicates(emb, out=tmp_path / "direct", threshold=0.95)
    via_index = find_duplicates(tmp_path / "index", out=tmp_path / "via_index", threshold=0.95)
    a = pd.read_parquet(direct.out / "pairs.parquet")
    b = pd.read_parquet(via_index.out / "pairs.parquet")
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 12
    import shutil

    shutil.rmtree(emb)
    with pytest.raises(FormatError, match="which is gone"):
        find_duplicates(tmp_path / "index", out=tmp_path / "again")


def test_cli_writes_results_and_prints_json(tmp_path, gen, run_cli) -> None:
    x = gen.random_unit(120, 16, seed=4)
    x[100] = gen.near_copy(x[3], 0.99, seed=1)
    emb = gen.write_dir(tmp_path / "emb", x)
    result = run_cli(
        "dedup", emb, "--out", tmp_path / "out", "--threshold", "0.95", "--format", "json"
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["pairs"], summary["to_remove"], summary["threshold"]) == (1, 1, 0.95)
    assert (tmp_path / "out" / "remove.txt").read_text() == "emb/item_00100.png\n"
    table = run_cli("dedup", emb, "--out", tmp_path / "out", "-t", "0.95")
    assert table.exit_code == 0
    assert "to remove" in table.stderr
    assert table.stdout == ""
    bad = run_cli("dedup", tmp_path / "nothing", "--out", tmp_path / "o2")
    assert bad.exit_code == 2
    assert bad.stderr.strip().startswith("error:")
    assert "Traceback" not in bad.stderr
    assert np.isclose(pd.read_parquet(tmp_path / "out" / "pairs.parquet").score[0], 0.99, atol=1e-4)


def test_default_threshold_is_calibrated_on_self_made_copies_of_the_corpus(tmp_path) -> None:
    from embedsearch.data.copies import make_copy_set
    from embedsearch.dedup import threshold
    from embedsearch.embedding import embed
    from embedsearch.store.reader import iter_vectors

    folder = tmp_path / "photos"
    folder.mkdir()
    for i, image in enumerate(make_copy_set(0, 30, "mild", size=32, seed=2).corpus):
        image.save(folder / f"{i:03d}.png")
    embed(folder, model="simclr:resnet18", out=tmp_path / "emb", image_size=32, workers=0)
    result = find_duplicates(tmp_path / "emb", out=tmp_path / "out")  # 30 rows: too few to whiten
    assert "mild self-copies pass" in result.threshold_rule
    assert result.space == "raw cosine"
    x = np.concatenate([v for _, v in iter_vectors(tmp_path / "emb")])
    sources = sorted(str(p) for p in folder.iterdir())  # 30 < CALIBRATION_IMAGES: every image
    from embedsearch.store.embedding_dir import EmbeddingDir

    copies = threshold.self_copies(
        EmbeddingDir.open(tmp_path / "emb"), sources, recipes=("mild",)
    ).scores("mild")
    assert len(copies) == 30
    expected = threshold.null_bound(x, len(x))  # copies are checked against it, they do not move it
    assert result.threshold == pytest.approx(expected, abs=1e-4)
    assert (
        f"{np.mean(copies >= result.threshold):.0%} of 30 mild self-copies pass"
        in result.threshold_rule
    )
