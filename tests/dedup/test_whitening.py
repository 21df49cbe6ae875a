"""PCA whitening before the near-duplicate search: the fit, the default rule, and what it buys."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from embedsearch import find_duplicates
from embedsearch.dedup import whitening
from embedsearch.dedup.threshold import SelfCopies
from embedsearch.dedup.whitening import choose_whitening, fit_whitening
from embedsearch.errors import InputError


def test_fit_whitens_the_sample_to_unit_variance_in_every_kept_direction() -> None:
    rng = np.random.default_rng(0)
    scales = np.array([10.0, 5.0, 2.0, 1.0, 0.5, 0.3, 0.2, 0.15])  # all above MIN_RELATIVE_VARIANCE
    x = (rng.normal(size=(2000, 8)) * scales) @ np.linalg.qr(rng.normal(size=(8, 8)))[0] + 3.0
    w = fit_whitening(x.astype(np.float32))
    assert w is not None
    assert w.dims == 8
    assert w.fit_rows == 2000
    y = (x - w.mean) @ w.projection  # before the final normalisation
    np.testing.assert_allclose(np.cov(y.T), np.eye(8), atol=2e-3)
    np.testing.assert_allclose(np.linalg.norm(w(x[:5]), axis=1), 1.0, rtol=1e-5)


def test_dims_follow_the_documented_rule() -> None:
    rng = np.random.default_rng(1)
    assert fit_whitening(rng.normal(size=(whitening.MIN_ROWS - 1, 16)).astype(np.float32)) is None
    assert (
        fit_whitening(rng.normal(size=(508, 512)).astype(np.float32)).dims
        == 508 // whitening.ROWS_PER_DIM
    )
    assert fit_whitening(rng.normal(size=(5000, 512)).astype(np.float32)).dims == whitening.MAX_DIMS
    flat = np.zeros((800, 32), np.float32)
    flat[:, :3] = rng.normal(size=(800, 3))  # three directions carry all the variance
    assert fit_whitening(flat).dims == 3


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def styled_corpus(
    n: int = 800, seed: int = 0, noise: str = "style"
) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """Items = a strong low-rank "style" + a faint "detail"; rows n/2.. are copies of rows 0..n/2.

    ``noise="style"``: copies keep the detail and the style moves, like photo embeddings, where
    the few directions that say what kind of image it is dominate the raw cosine and a re-lit
    copy can score below another image of the same kind. ``noise="isotropic"``: copies get small
    noise in every direction, much of it where the corpus barely varies.
    """
    rng = np.random.default_rng(seed)
    style_basis = rng.normal(size=(4, 64))
    n_orig = n // 2
    style = rng.normal(size=(n_orig, 4)) @ style_basis
    detail = rng.normal(size=(n_orig, 64)) * 0.35
    originals = style + detail
    if noise == "style":
        copies = style + rng.normal(size=(n_orig, 4)) @ style_basis * 0.5 + detail
    else:
        detail[:, 8:] *= 0.02  # most directions nearly empty in the corpus ...
        originals = style + detail
        copies = (
            originals + rng.normal(size=originals.shape) * 0.3
        )  # ... and full of the copies' noise
    x = np.concatenate([unit(originals), unit(copies)])
    return x, {(i, n_orig + i) for i in range(n_orig)}


def f1(pairs: pd.DataFrame, truth: set[tuple[int, int]]) -> float:
    found = {(int(a), int(b)) for a, b in zip(pairs.id_a, pairs.id_b, strict=False)}
    tp = len(found & truth)
    return 2 * tp / (len(found) + len(truth)) if found else 0.0


def test_whitening_finds_copies_that_raw_cosine_misses(tmp_path, gen) -> None:
    x, truth = styled_corpus()
    emb = gen.write_dir(tmp_path / "emb", x)
    whitened = find_duplicates(emb, out=tmp_path / "w", whiten=True)
    raw = find_duplicates(emb, out=tmp_path / "raw", whiten=False)
    assert whitened.space.startswith("PCA-whitened, 64 of 64 dims")
    assert raw.space == "raw cosine"
    f1_whitened = f1(pd.read_parquet(whitened.out / "pairs.parquet"), truth)
    f1_raw = f1(pd.read_parquet(raw.out / "pairs.parquet"), truth)
    assert f1_whitened >= 0.9, (f1_whitened, f1_raw)
    assert f1_raw < 0.6, (f1_whitened, f1_raw)
    summary = json.loads((whitened.out / "dedup.json").read_text())
    assert summary["scores"] == whitened.space
    assert summary["whitening"] == "whitened: asked for"
    assert "scores: PCA-whitened" in (whitened.out / "histogram.txt").read_text()
    # The threshold without copy calibration ("test-model" cannot be loaded) is the null bound:
    # whitened cosines need no raw-cosine floor.
    assert whitened.threshold < 0.95
    assert "no copy check" in whitened.threshold_rule


def test_whitened_scores_are_cosines_of_the_whitened_vectors(tmp_path, gen) -> None:
    x, _ = styled_corpus(seed=1)
    emb = gen.write_dir(tmp_path / "emb", x)
    result = find_duplicates(emb, out=tmp_path / "out", threshold=0.5, whiten=True)
    sample = x  # 800 rows < the threshold sample size: the whitening is fit on every row
    w = fit_whitening(sample)
    y = w(x)
    pairs = pd.read_parquet(result.out / "pairs.parquet")
    assert len(pairs) > 0
    np.testing.assert_allclose(
        pairs.score, np.einsum("ij,ij->i", y[pairs.id_a], y[pairs.id_b]), atol=1e-4
    )


def test_whiten_on_too_few_rows_and_with_semdedup_is_refused(tmp_path, gen) -> None:
    emb = gen.write_dir(tmp_path / "emb", gen.random_unit(100, 16, seed=0))
    with pytest.raises(InputError, match="at least 500 rows"):
        find_duplicates(emb, out=tmp_path / "out", whiten=True)
    with pytest.raises(InputError, match="knn only"):
        find_duplicates(emb, out=tmp_path / "out", method="semdedup", whiten=True)
    # The default: too few rows to fit on.
    assert find_duplicates(emb, out=tmp_path / "out").space == "raw cosine"


def self_copies_of(x: np.ndarray) -> SelfCopies:
    """The 200 first (original, copy) pairs of a styled corpus, as dedup's self-copy test would
    see them."""
    half = len(x) // 2
    return SelfCopies(x[:200], {"mild": x[half : half + 200], "strong": x[half : half + 200]})


@pytest.mark.parametrize("noise, expect_whitened", [("style", True), ("isotropic", False)])
def test_default_whitens_only_when_it_helps_the_corpus_own_copies(noise, expect_whitened) -> None:
    x, truth = styled_corpus(noise=noise)
    whitening, why = choose_whitening(lambda: x, len(x), self_copies_of(x), whiten=None)
    assert (whitening is not None) == expect_whitened, why
    assert why.startswith("whitened: " if expect_whitened else "raw cosine: ")
    assert "strong self-copies" in why
    # ... and that choice is the one with more of the true pairs above the null bound.
    from embedsearch.dedup.threshold import null_bound

    def passing(y: np.ndarray) -> int:
        return sum(y[a] @ y[b] >= null_bound(y, len(y)) for a, b in truth)

    w = fit_whitening(x)
    assert (passing(w(x)) > passing(x)) == expect_whitened


def test_default_compares_raw_cosines_without_images_to_test_on(tmp_path, gen, monkeypatch) -> None:
    from embedsearch.dedup.inputs import DedupInputs

    samples = []
    original = DedupInputs.sample
    monkeypatch.setattr(
        DedupInputs, "sample", lambda self, *a, **k: samples.append(a) or original(self, *a, **k)
    )
    x, _ = styled_corpus()
    result = find_duplicates(
        gen.write_dir(tmp_path / "emb", x), out=tmp_path / "out", threshold=0.9
    )
    assert result.space == "raw cosine"
    assert result.whitening == "raw cosine: no images of the corpus to test whitening on"
    assert samples == []  # nothing to decide and a threshold given: no extra pass over the vectors


def test_cli_no_whiten_flag(tmp_path, gen, run_cli) -> None:
    x, _ = styled_corpus()
    emb = gen.write_dir(tmp_path / "emb", x)
    result = run_cli("dedup", emb, "--out", tmp_path / "out", "--no-whiten", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["scores"] == "raw cosine"
    result = run_cli("dedup", emb, "--out", tmp_path / "out", "--whiten", "--format", "json")
    assert json.loads(result.stdout)["scores"].startswith(
        "PCA-whitened, 64 of 64 dims, fit on 800 rows"
    )
