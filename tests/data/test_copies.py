"""The seeded copy-detection set: shapes, determinism, labels, disjoint train/corpus."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from embedsearch.data import copies
from embedsearch.data.copies import make_copy_set, write_copy_set
from embedsearch.errors import InputError


def _array(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


@pytest.fixture(scope="module")
def mild() -> copies.CopySet:
    return make_copy_set(
        n_train=20, n_corpus=30, strength="mild", size=32, seed=3, copies_per_original=2
    )


def test_shapes_and_labels(mild: copies.CopySet) -> None:
    assert len(mild.train) == 20
    assert len(mild.corpus) == 30
    assert len(mild.copies) == 60
    assert mild.copy_of.dtype == np.int64
    assert mild.copy_of.tolist() == [i // 2 for i in range(60)]
    for image in mild.train + mild.corpus + mild.copies:
        assert image.mode == "RGB"
        assert image.size == (32, 32)


def test_each_mild_copy_is_closest_to_its_own_original(mild: copies.CopySet) -> None:
    corpus = np.stack([_array(im) for im in mild.corpus])
    hits = 0
    for image, original in zip(mild.copies, mild.copy_of, strict=False):
        distances = ((corpus - _array(image)) ** 2).mean(axis=(1, 2, 3))
        hits += int(np.argmin(distances) == original)
    # Mild copies are re-crops of >= 88 % of the area: pixel distance alone nearly always finds
    # them.
    assert hits >= 0.9 * len(mild.copies)


def test_same_seed_same_set_other_seed_other_set() -> None:
    a = make_copy_set(5, 6, "strong", size=24, seed=11)
    b = make_copy_set(5, 6, "strong", size=24, seed=11)
    c = make_copy_set(5, 6, "strong", size=24, seed=12)
    for x, y in zip(a.train + a.corpus + a.copies, b.train + b.corpus + b.copies, strict=False):
        assert np.array_equal(_array(x), _array(y))
    assert not all(
        np.array_equal(_array(x), _array(y)) for x, y in zip(a.corpus, c.corpus, strict=False)
    )


def test_corpus_does_not_depend_on_train_count() -> None:
    a = make_copy_set(0, 6, "mild", size=24, seed=5)
    b = make_copy_set(15, 6, "mild", size=24, seed=5)
    assert all(
        np.array_equal(_array(x), _array(y))
        for x, y in zip(a.corpus + a.copies, b.corpus + b.copies, strict=False)
    )


def test_train_and_corpus_crops_come_from_disjoint_zones_and_corpus_crops_barely_overlap() -> None:
    photos = copies.load_photos()
    rng = np.random.default_rng(0)
    train = copies._sample_boxes(rng, photos, 200, 32, train=True)
    corpus = copies._sample_boxes(rng, photos, 200, 32, train=False)
    for box in train:
        left, top, right, bottom = copies._zone(photos[box.photo].shape, train=True)
        assert left <= box.left
        assert box.left + box.side <= right
        assert top <= box.top
        assert box.top + box.side <= bottom
    for box in corpus:
        left, top, right, bottom = copies._zone(photos[box.photo].shape, train=False)
        assert left <= box.left
        assert box.left + box.side <= right
        assert top <= box.top
        assert box.top + box.side <= bottom
    for i, a in enumerate(corpus):
        for b in corpus[i + 1 :]:
            assert a.overlap(b) <= copies.MAX_OVERLAP * min(a.side, b.side) ** 2


def test_strong_copies_differ_more_from_their_originals_than_mild_ones() -> None:
    mild = make_copy_set(0, 40, "mild", size=32, seed=1)
    strong = make_copy_set(0, 40, "strong", size=32, seed=1)

    def mean_error(s: copies.CopySet) -> float:
        return float(
            np.mean(
                [
                    np.abs(_array(c) - _array(s.corpus[o])).mean()
                    for c, o in zip(s.copies, s.copy_of, strict=False)
                ]
            )
        )

    assert mean_error(strong) > 1.5 * mean_error(mild)


def test_write_copy_set_round_trips(tmp_path, mild: copies.CopySet) -> None:
    out = write_copy_set(mild, tmp_path / "set")
    assert len(list((out / "train").glob("*.png"))) == 20
    assert len(list((out / "corpus").glob("*.png"))) == 30
    with open(out / "pairs.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 60
    assert rows[3] == {"copy": "copies/000003.jpg", "original": "corpus/000001.png"}
    # Copies keep their JPEG tables: re-reading gives (almost) the same pixels, not a second
    # compression.
    reread = Image.open(out / rows[3]["copy"]).convert("RGB")
    assert np.abs(_array(reread) - _array(mild.copies[3])).mean() < 1.0
    assert np.array_equal(_array(Image.open(out / "corpus" / "000001.png")), _array(mild.corpus[1]))


def test_bad_arguments_are_user_errors() -> None:
    with pytest.raises(InputError, match="strength"):
        make_copy_set(1, 1, strength="extreme")
    with pytest.raises(InputError, match="distinct corpus crops"):
        make_copy_set(0, 100_000, size=200)
