"""find_duplicates on generated embedding dirs: exact copies, near copies, no chaining, outputs."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from embedsearch import find_duplicates
from embedsearch.dedup import pair_search, threshold
from embedsearch.errors import InputError, MismatchError


@pytest.fixture
def corpus(tmp_path, gen):
    """300 random vectors in 32 d; rows 200..209 are near copies (cos 0.97) of rows 0..9,
    rows 210..212 exact copies (same content hash and vector) of rows 20..22."""
    x = gen.random_unit(300, 32, seed=0)
    for i in range(10):
        x[200 + i] = gen.near_copy(x[i], 0.97, seed=i)
    sources = [f"img_{i:03d}.png" for i in range(300)]
    hashes = [f"{i:032x}" for i in range(300)]
    for j, i in enumerate(range(20, 23)):
        x[210 + j] = x[i]
        hashes[210 + j] = hashes[i]
    return gen.write_dir(tmp_path / "emb", x, sources, hashes), x, sources


def test_finds_exact_and_near_copies_and_writes_readable_outputs(tmp_path, corpus, gen) -> None:
    emb, _, sources = corpus
    result = find_duplicates(emb, out=tmp_path / "out", threshold=0.9)
    pairs = pd.read_parquet(result.out / "pairs.parquet")
    found = {(a, b) for a, b in zip(pairs.id_a, pairs.id_b, strict=False)}
    assert found == {(i, 200 + i) for i in range(10)} | {(20 + j, 210 + j) for j in range(3)}
    assert set(pairs.loc[pairs.exact, "id_b"]) == {210, 211, 212}
    near_scores = pairs.loc[~pairs.exact, "score"]
    assert np.allclose(near_scores, 0.97, atol=1e-4)  # exact re-scored cosines, not approximations
    groups = pd.read_parquet(result.out / "groups.parquet")
    assert list(groups.columns) == ["group", "id", "source", "keep", "dir"]
    assert groups.groupby("group").keep.sum().eq(1).all()
    removed = (result.out / "remove.txt").read_text().splitlines()
    kept = (result.out / "keep.txt").read_text().splitlines()
    assert sorted(removed) == sorted(sources[i] for i in list(range(200, 213)))
    assert sorted(kept + removed) == sorted(sources)
    summary = json.loads((result.out / "dedup.json").read_text())
    assert (
        (summary["pairs"], summary["groups"], summary["to_remove"])
        == (13, 13, 13)
        == (result.pairs, result.groups, result.to_remove)
    )
    assert (result.out / "histogram.png").stat().st_size > 1000
    assert "threshold 0.9000" in (result.out / "histogram.txt").read_text()
    umask = os.umask(0o022)
    os.umask(umask)
    assert result.out.stat().st_mode & 0o777 == 0o777 & ~umask  # the dir respects the umask


def test_chains_are_not_merged(tmp_path, gen) -> None:
    # A chain of 12 vectors on a great circle, 0.1 rad apart: neighbours at cos 0.995, the
    # ends at cos(1.1) = 0.45. Connected components would make one group of 12.
    angles = np.arange(12) * 0.1
    x = np.zeros((12, 8), np.float32)
    x[:, 0], x[:, 1] = np.cos(angles), np.sin(angles)
    others = gen.random_unit(50, 8, seed=1) * 0.3 + np.eye(8, dtype=np.float32)[5]
    emb = gen.write_dir(tmp_path / "emb", np.concatenate([x, gen.unit(others)]))
    t = float(np.cos(0.1) - 1e-4)
    result = find_duplicates(emb, out=tmp_path / "out", threshold=t)
    groups = pd.read_parquet(result.out / "groups.parquet")
    chain = groups[groups.id < 12]
    assert chain.group.nunique() >= 3
    for _, members in chain.groupby("group"):
        ids = members.id.to_numpy()
        sims = x[ids] @ x[ids].T
        # Star rule: some member (the representative) is within the threshold of all others.
        assert (sims >= t - 1e-5).all(axis=1).any()


@pytest.mark.parametrize("exact_limit", [pair_search.EXACT_LIMIT, 100], ids=["flat", "ivf"])
def test_against_reports_only_cross_pairs(tmp_path, monkeypatch, gen, exact_limit) -> None:
    monkeypatch.setattr(
        pair_search, "EXACT_LIMIT", exact_limit
    )  # the IVF index is built over the other set only
    train = gen.random_unit(200, 16, seed=2)
    test = gen.random_unit(60, 16, seed=3)
    test[5] = gen.near_copy(train[7], 0.98, seed=0)
    test[6] = gen.near_copy(train[8], 0.98, seed=1)
    test[40] = gen.near_copy(test[41], 0.99, seed=2)  # a duplicate inside the test set: not a leak
    test[50] = train[9]  # the same file in both sets
    train_hashes = [f"train-{i}" for i in range(200)]
    test_hashes = [f"test-{i}" for i in range(60)]
    test_hashes[50] = train_hashes[9]
    test_hashes[45] = test_hashes[44]  # an exact duplicate inside the test set: not a leak either
    train_dir = gen.write_dir(tmp_path / "train", train, hashes=train_hashes)
    test_dir = gen.write_dir(tmp_path / "test", test, hashes=test_hashes)
    result = find_duplicates(test_dir, out=tmp_path / "leaks", against=train_dir, threshold=0.95)
    assert result.search.startswith("IVF") == (exact_limit == 100)
    pairs = pd.read_parquet(result.out / "pairs.parquet")
    assert (pairs.dir_a == 0).all()
    assert (pairs.dir_b == 1).all()
    assert sorted(zip(pairs.id_a, pairs.id_b, pairs.exact, strict=False)) == [
        (5, 7, False),
        (6, 8, False),
        (50, 9, True),
    ]
    removed = (result.out / "remove.txt").read_text().splitlines()
    assert removed == ["test/item_00005.png", "test/item_00006.png", "test/item_00050.png"]
    assert len((result.out / "keep.txt").read_text().splitlines()) == 57


def test_ivf_path_matches_brute_force(tmp_path, monkeypatch, gen) -> None:
    x = gen.random_unit(3000, 24, seed=4)
    for i in range(40):
        x[2000 + i] = gen.near_copy(x[i], 0.95, seed=10 + i)
    emb = gen.write_dir(tmp_path / "emb", x, shard_rows=1000)
    monkeypatch.setattr(pair_search, "EXACT_LIMIT", 1000)
    # Raw cosines, so the pairs can be checked against brute force on the same vectors.
    result = find_duplicates(
        emb, out=tmp_path / "out", threshold=0.9, nprobe=8, block_rows=700, whiten=False
    )
    assert result.search.startswith("IVF")
    pairs = pd.read_parquet(result.out / "pairs.parquet")
    sims = x @ x.T
    truth = {(int(a), int(b)) for a, b in zip(*np.nonzero(np.triu(sims >= 0.9, 1)), strict=False)}
    assert {(a, b) for a, b in zip(pairs.id_a, pairs.id_b, strict=False)} == truth
    assert len(truth) == 40


def test_large_groups_are_found_whole_beyond_k(tmp_path, gen) -> None:
    base = gen.random_unit(1, 16, seed=5)[0]
    x = np.concatenate(
        [
            np.stack([gen.near_copy(base, 0.995, seed=s) for s in range(30)]),
            gen.random_unit(100, 16, seed=6),
        ]
    )
    emb = gen.write_dir(tmp_path / "emb", x)
    result = find_duplicates(emb, out=tmp_path / "out", threshold=0.95, k=4)
    groups = pd.read_parquet(result.out / "groups.parquet")
    assert result.groups == 1
    assert sorted(groups.id) == list(range(30))
    assert result.pairs == 30 * 29 // 2  # every pair above the threshold, not only 4 per item


def test_default_threshold_without_calibration_follows_the_documented_rule(
    tmp_path, corpus, gen
) -> None:
    emb, x, _ = corpus  # model "test-model" cannot be loaded: no copy calibration
    result = find_duplicates(emb, out=tmp_path / "out")
    expected, rule = threshold.default_threshold(
        x, len(x), None
    )  # 300 rows < SAMPLE_ROWS: the sample is everything
    assert rule.startswith("no copy calibration")
    # The documented null: leave out each row's best match, then the score ~0.05 * N pairs exceed.
    scores = x @ x.T
    np.fill_diagonal(scores, -np.inf)
    best = scores.argmax(axis=1)
    mask = np.triu(np.ones_like(scores, dtype=bool), 1)
    mask[np.arange(len(x)), best] = mask[best, np.arange(len(x))] = False
    pool = np.sort(scores[mask])[::-1]
    n = len(x)
    null = pool[int(np.ceil(threshold.false_pair_rate(n) * (n * (n - 1) // 2 - n))) - 1]
    assert threshold.null_bound(x, n) == pytest.approx(null, abs=1e-6)
    assert expected == pytest.approx(max(threshold.FALLBACK_FLOOR, null), abs=1e-4)
    assert result.threshold == pytest.approx(expected, abs=1e-5)
    assert result.threshold_rule == rule
    assert json.loads((result.out / "dedup.json").read_text())["threshold"] == pytest.approx(
        expected, abs=1e-5
    )


def test_keep_rules_choose_the_survivor(tmp_path, gen) -> None:
    files = tmp_path / "files"
    files.mkdir()
    sources = []
    for i, size in enumerate([10, 500, 40]):
        path = files / f"f{i}.jpg"
        path.write_bytes(b"x" * size)
        sources.append(str(path))
    base = gen.random_unit(1, 16, seed=7)[0]
    group = np.stack([gen.near_copy(base, c, seed=i) for i, c in enumerate([0.97, 0.96, 0.999])])
    x = np.concatenate([group, gen.random_unit(20, 16, seed=8)])
    sources += [f"other_{i}.png" for i in range(20)]
    emb = gen.write_dir(tmp_path / "emb", x, sources)
    survivors = {}
    for keep in ("first", "largest", "centroid"):
        result = find_duplicates(emb, out=tmp_path / keep, threshold=0.9, keep=keep)
        groups = pd.read_parquet(result.out / "groups.parquet")
        assert result.groups == 1
        survivors[keep] = int(groups.loc[groups.keep, "id"].iloc[0])
    mean = gen.unit(group.mean(axis=0))
    assert survivors == {"first": 0, "largest": 1, "centroid": int(np.argmax(group @ mean))}


def test_refuses_bad_input(tmp_path, corpus, gen) -> None:
    emb, x, _ = corpus
    other = gen.write_dir(tmp_path / "other", x[:10], fingerprint="another-model")
    with pytest.raises(MismatchError, match="different models cannot be mixed"):
        find_duplicates(emb, out=tmp_path / "o1", against=other)
    with pytest.raises(InputError, match="same embedding dir"):
        find_duplicates(emb, out=tmp_path / "o2", against=emb)
    with pytest.raises(InputError, match="keep"):
        find_duplicates(emb, out=tmp_path / "o3", keep="smallest")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "precious.txt").write_text("x")
    with pytest.raises(InputError, match="not a dedup result"):
        find_duplicates(emb, out=tmp_path / "busy", threshold=0.9)
    with pytest.raises(InputError, match="does not exist"):
        find_duplicates(tmp_path / "missing", out=tmp_path / "o4")
