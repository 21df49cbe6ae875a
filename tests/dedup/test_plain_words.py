"""dedup for a newcomer: every phase reports progress, the threshold is said in plain words, and
when few of the corpus's own copies pass, the advice names what to do and a threshold value."""

from __future__ import annotations

import contextlib
import io
import json
import re

import numpy as np
import pytest

from embedsearch.dedup import calibration, threshold
from embedsearch.dedup.inputs import open_inputs
from embedsearch.dedup.local_scaling import LocalScaling
from embedsearch.store.arrays import write_embedding_dir


@pytest.fixture(scope="module")
def photos_emb(tmp_path_factory):
    """20 images embedded with a loadable model: the copy calibration can run on them."""
    from embedsearch.data.copies import make_copy_set
    from embedsearch.embedding import embed

    root = tmp_path_factory.mktemp("photos")
    (root / "photos").mkdir()
    for i, image in enumerate(make_copy_set(0, 20, "mild", size=32, seed=2).corpus):
        image.save(root / "photos" / f"{i:03d}.png")
    embed(root / "photos", model="simclr:resnet18", out=root / "emb", image_size=32, workers=0)
    return root / "emb"


@pytest.fixture(scope="module")
def dedup_run(photos_emb, tmp_path_factory) -> tuple[str, dict]:
    """One `embedsearch dedup` through the CLI entry point: (its stderr, its dedup.json)."""
    from embedsearch.cli.app import main

    out = tmp_path_factory.mktemp("dups") / "out"
    stderr = io.StringIO()  # not a terminal: progress comes as plain lines
    with contextlib.redirect_stderr(stderr), pytest.raises(SystemExit) as exit_info:
        main(["dedup", str(photos_emb), "-o", str(out)])
    assert exit_info.value.code in (0, None), stderr.getvalue()
    return stderr.getvalue(), json.loads((out / "dedup.json").read_text())


def test_the_copy_calibration_reports_its_images(dedup_run) -> None:
    printed, _ = dedup_run
    assert "calibrating: copies of 20 of your images: 20/20" in printed


def test_loading_the_model_is_a_reported_phase(dedup_run) -> None:
    printed, _ = dedup_run
    assert "calibrating: loading simclr:resnet18" in printed


def test_calibration_is_reported_before_the_search(dedup_run) -> None:
    printed, _ = dedup_run
    assert printed.index("calibrating: copies") < printed.index("searching neighbours")


def test_the_threshold_words_say_what_the_copies_did(dedup_run) -> None:
    _, summary = dedup_run
    assert "lightly edited copies of your own images" in summary["threshold_words"]


def test_the_threshold_words_carry_no_jargon(dedup_run) -> None:
    _, summary = dedup_run
    assert not re.search(r"null|x N|mild self-copies", summary["threshold_words"])


def test_the_cli_prints_the_threshold_in_words(dedup_run) -> None:
    printed, summary = dedup_run
    assert f"threshold {summary['threshold_words']}" in " ".join(printed.split())


def _inputs(tmp_path, options=None):
    x = np.random.default_rng(0).standard_normal((200, 16)).astype(np.float32)
    write_embedding_dir(tmp_path / "emb", x, model="simclr:resnet18", model_options=options)
    inputs = open_inputs(tmp_path / "emb", None)
    sample = x / np.linalg.norm(x, axis=1, keepdims=True)
    return inputs, sample


def _advice(tmp_path, passing_scores, options=None):
    inputs, sample = _inputs(tmp_path, options)
    choice = threshold.choose_threshold(sample, 200, passing_scores)
    return choice, calibration.advice(inputs, choice, passing_scores, sample, 200)


def _few_passing() -> np.ndarray:
    return np.linspace(0.2, 0.9, 50).astype(np.float32)  # most copies below the null bound


def test_few_passing_copies_bring_advice_to_pretrain_on_the_folder(tmp_path) -> None:
    _, tips = _advice(tmp_path, _few_passing())
    assert any(t.startswith("$ embedsearch pretrain simclr") for t in tips)


def test_few_passing_copies_bring_advice_to_flip_average(tmp_path) -> None:
    _, tips = _advice(tmp_path, _few_passing())
    assert any("--model simclr:resnet18 --flip-average" in t for t in tips)


def test_flip_average_is_not_advised_when_already_used(tmp_path) -> None:
    _, tips = _advice(tmp_path, _few_passing(), {"flip_average": True})
    assert not any("embed again with --flip-average" in t for t in tips)


def test_the_advised_threshold_lets_most_copies_through(tmp_path) -> None:
    scores = _few_passing()
    _, tips = _advice(tmp_path, scores)
    (value,) = [float(m) for t in tips for m in re.findall(r"--threshold (\d\.\d{4})", t)]
    assert np.mean(scores >= value) >= calibration.ADVISED_COPY_SHARE


def test_no_advice_when_most_copies_pass(tmp_path) -> None:
    choice, tips = _advice(tmp_path, np.full(50, 0.999, np.float32))
    assert (choice.passing, tips) == (1.0, [])


def test_unrelated_pairs_above_estimates_the_corpus_count() -> None:
    x = np.random.default_rng(1).standard_normal((400, 8))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    scores = x @ x.T
    exact = int((scores[np.triu_indices(400, 1)] >= 0.5).sum())
    estimate = threshold.unrelated_pairs_above(x, 0.5, 400)
    assert estimate == pytest.approx(exact, rel=0.05)


def test_the_advised_threshold_keeps_local_scaling_when_scores_are_scaled(tmp_path) -> None:
    # A given --threshold is a plain cosine unless --local-scaling comes with it.
    inputs, sample = _inputs(tmp_path)
    levels = LocalScaling(sample).levels(sample)
    scores = _few_passing() - 0.5
    choice = threshold.choose_threshold(sample, 200, scores, levels=levels)
    tips = calibration.advice(inputs, choice, scores, sample, 200, levels)
    assert any(re.search(r"--threshold -?\d\.\d{4} --local-scaling:", t) for t in tips)
