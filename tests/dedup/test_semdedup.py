"""SemDeDup: within-cluster pruning keeps the member farthest from the centroid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from embedsearch import find_duplicates
from embedsearch.dedup.grouping import chain_groups
from embedsearch.dedup.semdedup import prune_cluster
from embedsearch.errors import InputError


def test_prune_cluster_keeps_the_farthest_member_and_removes_its_copies(gen) -> None:
    centroid = gen.unit(np.eye(8)[0])
    far = gen.near_copy(centroid, 0.5, seed=1)
    near_far = gen.near_copy(far, 0.99, seed=2)  # a copy of the far item, closer to the centroid
    distinct = gen.near_copy(centroid, 0.9, seed=3)
    vectors = np.stack([distinct, near_far, far]).astype(np.float32)
    order, match, score, best = prune_cluster(vectors, centroid)
    removed = order[score >= 0.95]
    assert order[0] == 2  # farthest from the centroid comes first and is kept
    assert removed.tolist() == [1]
    assert match[score >= 0.95].tolist() == [2]
    assert best[list(order).index(0)] < 0.95


def test_chain_groups_follow_removed_items_to_a_kept_one() -> None:
    groups = chain_groups(np.array([3, 4, 9]), np.array([1, 3, 8]))
    table = dict(
        zip(
            groups.rows.tolist(),
            zip(groups.group.tolist(), groups.keep.tolist(), strict=False),
            strict=False,
        )
    )
    assert table == {1: (0, True), 3: (0, False), 4: (0, False), 8: (1, True), 9: (1, False)}


def test_semdedup_end_to_end_matches_the_knn_method_on_clear_copies(tmp_path, gen) -> None:
    x = gen.random_unit(400, 16, seed=11)
    for i in range(25):
        x[300 + i] = gen.near_copy(x[i], 0.98, seed=100 + i)
    emb = gen.write_dir(tmp_path / "emb", x)
    sem = find_duplicates(emb, out=tmp_path / "sem", method="semdedup", clusters=8, eps=0.05)
    knn = find_duplicates(emb, out=tmp_path / "knn", threshold=0.95)
    assert sem.search == "semdedup k-means 8 clusters"
    assert sem.threshold == pytest.approx(0.95)
    sem_pairs = pd.read_parquet(sem.out / "pairs.parquet")
    knn_pairs = pd.read_parquet(knn.out / "pairs.parquet")
    # Copies at 0.98 land in their original's cluster, so both methods see the same 25 pairs.
    assert set(zip(sem_pairs.id_a, sem_pairs.id_b, strict=False)) == set(
        zip(knn_pairs.id_a, knn_pairs.id_b, strict=False)
    )
    assert sem.to_remove == 25
    groups = pd.read_parquet(sem.out / "groups.parquet")
    assert groups.groupby("group").keep.sum().eq(1).all()


def test_semdedup_options_are_checked(tmp_path, gen) -> None:
    emb = gen.write_dir(tmp_path / "emb", gen.random_unit(60, 8, seed=1))
    with pytest.raises(InputError, match="--eps"):
        find_duplicates(emb, out=tmp_path / "o", method="semdedup", threshold=0.9)
    with pytest.raises(InputError, match="semdedup"):
        find_duplicates(emb, out=tmp_path / "o", clusters=4)
    with pytest.raises(InputError, match="farthest"):
        find_duplicates(emb, out=tmp_path / "o", method="semdedup", keep="largest")
    with pytest.raises(InputError, match="--against"):
        find_duplicates(emb, out=tmp_path / "o", method="semdedup", against=emb)


def test_semdedup_default_eps_comes_from_the_raw_cosine_default_threshold(tmp_path, gen) -> None:
    """Without --eps, SemDeDup prunes at the knn method's default threshold in raw cosines
    (600 rows would allow whitening, but semdedup never whitens)."""
    from embedsearch.dedup import threshold as thresholds
    from embedsearch.store.reader import iter_vectors

    x = gen.random_unit(600, 16, seed=12)
    emb = gen.write_dir(tmp_path / "emb", x)
    sem = find_duplicates(emb, out=tmp_path / "sem", method="semdedup", clusters=8)
    knn = find_duplicates(emb, out=tmp_path / "knn", whiten=False)
    vectors = np.concatenate([v for _, v in iter_vectors(emb)])
    expected = max(thresholds.FALLBACK_FLOOR, thresholds.null_bound(vectors, len(vectors)))
    assert sem.threshold == knn.threshold == pytest.approx(expected, abs=1e-4)
    assert sem.threshold_rule.startswith("eps = 1 - default threshold; no copy calibration")
    assert sem.space == "raw cosine"
