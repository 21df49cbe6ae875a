"""The default ``--threshold``: calibrated on the model at hand and the data at hand.

Models put duplicates and unrelated items at very different cosines (a random-init
ResNet puts everything above 0.95, a contrastively trained encoder puts unrelated
items near 0), so no fixed number fits them all. The scale comes from the data:

- **what unrelated items score**: all pairs of a uniform sample of rows, less each row's
  best match (a random pair is almost never a duplicate, and leaving out best matches
  removes the few that are); the null bound is the score that a share
  ``2 * FALSE_PAIRS_PER_ROW / (N - 1)`` of them exceed, so about ``0.05 * N`` unrelated
  pairs of the whole corpus pass it. The sample grows with N (``20 * sqrt(N)`` rows, at
  least ``SAMPLE_ROWS``) so that at least 20 sample pairs lie above the bound.
- **what a copy scores** (image corpora whose files and model are still available):
  ``CALIBRATION_IMAGES`` images of the corpus, drawn at random, are copied with the
  *mild* recipe of :mod:`embedsearch.data.copies` (re-crop keeping >= 88 % of the area,
  brightness/contrast +-10 %, JPEG 40-80) and embedded with the same model (and the same
  whitening); the rule text reports the share of them that pass the threshold.

    threshold = null bound

The null bound is the lowest threshold that keeps false pairs near ``0.05 * N``, which is
what lets harder copies through (an earlier rule at the mild copies' level missed most strong
copies: ``benchmarks/RESULTS.md``, issue 6).
Without whitening *and* without copies to check against (text corpora, moved files, a model
that cannot be loaded or whose fingerprint changed) nothing confirms that the raw cosines
mean what they seem, and the rule is ``max(FALLBACK_FLOOR, null bound)``. The threshold is
rounded to 4 decimals; the rule actually used is written into ``dedup.json`` and the histogram.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from embedsearch.dedup.local_scaling import LocalScaling
from embedsearch.errors import EmbedsearchError
from embedsearch.progress import NullProgress, Progress
from embedsearch.store.embedding_dir import EmbeddingDir

SAMPLE_ROWS = 2_000
CALIBRATION_IMAGES = 200
MIN_CALIBRATION_IMAGES = 20
FALSE_PAIRS_PER_ROW = 0.05
FALLBACK_FLOOR = 0.95


def null_sample_size(n_total: int) -> int:
    """Rows to sample so that the null bound is read off at least ``20`` sample pairs above it."""
    rho = false_pair_rate(n_total)
    return int(min(n_total, max(SAMPLE_ROWS, np.ceil(np.sqrt(2 * 20 / rho)))))


def false_pair_rate(n_total: int) -> float:
    """Share of unrelated pairs allowed above the threshold: ``FALSE_PAIRS_PER_ROW * N`` in all."""
    return min(1.0, FALSE_PAIRS_PER_ROW * 2.0 / max(n_total - 1, 1))


def null_bound(
    sample: np.ndarray, n_total: int, block: int = 256, levels: np.ndarray | None = None
) -> float:
    """The score a share :func:`false_pair_rate` of unrelated pairs exceed, from ``sample``'s pairs
    (locally scaled by the sample rows' ``levels`` when given: :mod:`.local_scaling`).

    Each row's best match in the sample is left out: when a corpus is dense in copies (or
    the sample is the whole corpus) a copy and its original are each other's best match
    and would otherwise raise the bound. Computed in row blocks, keeping only the top scores.

    Example:
        >>> x = np.eye(6, dtype=np.float32)
        >>> null_bound(np.concatenate([x, x[:1]]), n_total=7)   # the duplicate pair is left out
        0.0
    """
    n = len(sample)
    if n < 3:
        return 1.0
    best = np.concatenate(
        [_masked_scores(sample, i, block, levels).argmax(axis=1) for i in range(0, n, block)]
    )
    pairs = n * (n - 1) // 2 - n
    top_m = max(1, int(np.ceil(false_pair_rate(n_total) * pairs)))
    top = np.empty(0, np.float32)
    for i in range(0, n, block):
        scores = _masked_scores(sample, i, block, levels)
        rows = np.arange(i, min(n, i + block))
        scores[np.arange(len(rows)), best[rows]] = -np.inf
        scores[best[None, :] == rows[:, None]] = -np.inf  # pairs where this row is the other's best
        scores[np.arange(n)[None, :] <= rows[:, None]] = -np.inf  # each pair once
        values = scores[np.isfinite(scores)]
        top = np.concatenate([top, values])
        if len(top) > top_m:
            top = np.partition(top, len(top) - top_m)[-top_m:]
    return float(top.min()) if len(top) else 1.0


def _masked_scores(
    sample: np.ndarray, start: int, block: int, levels: np.ndarray | None = None
) -> np.ndarray:
    scores = sample[start : start + block] @ sample.T
    if levels is not None:
        scores = LocalScaling.adjust(scores, levels[start : start + block, None], levels[None, :])
    scores[np.arange(len(scores)), np.arange(start, start + len(scores))] = -np.inf
    return scores


@dataclass
class SelfCopies:
    """Vectors of corpus images and of copies made of them (mild and strong recipes), as the
    model gives them.

    Example:
        >>> c = SelfCopies(np.eye(2, dtype=np.float32), {"mild": np.eye(2, dtype=np.float32)})
        >>> c.scores("mild").tolist()
        [1.0, 1.0]
    """

    originals: np.ndarray
    copies: dict[str, np.ndarray]

    def scores(
        self,
        recipe: str,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
        scaling: LocalScaling | None = None,
    ) -> np.ndarray:
        """Original-copy cosines for one recipe, after ``transform`` (the whitening) when given,
        locally scaled by ``scaling`` when given."""
        a, b = self.originals, self.copies[recipe]
        if transform is not None:
            a, b = transform(a), transform(b)
        scores = np.einsum("ij,ij->i", a, b)
        if scaling is not None:
            scores = scaling.adjust(scores, scaling.levels(a), scaling.levels(b))
        return scores


def self_copies(
    emb_dir: EmbeddingDir,
    sources: Sequence[str],
    seed: int = 0,
    recipes: Sequence[str] = ("mild", "strong"),
    progress: Progress | None = None,
) -> SelfCopies | None:
    """Embed images of ``sources`` and copies of them (:mod:`embedsearch.data.copies` recipes)
    with ``emb_dir``'s model; ``progress`` hears of loading the model and of each image.

    None when this cannot be measured: not an image dir, model not loadable or changed
    (another fingerprint), or fewer than ``MIN_CALIBRATION_IMAGES`` readable files.
    """
    if emb_dir.modality != "image":
        return None
    paths = [s for s in sources if s and os.path.isfile(s)]
    if len(paths) < MIN_CALIBRATION_IMAGES:
        return None
    progress = progress or NullProgress()
    progress.start(f"calibrating: loading {emb_dir.model}", 1)
    try:  # the dir's carried run dir or its recorded model, checked by fingerprint
        from embedsearch.encoders.locate import ModelRecord, load_recorded

        encoder = load_recorded(ModelRecord.of(emb_dir.manifest, emb_dir.path))
        progress.advance(1)
    except (EmbedsearchError, TypeError):
        return None
    finally:
        progress.stop()
    return _embed_copies(encoder.to("cpu"), paths, seed, recipes, progress)


COPY_BATCH = 16  # images embedded at a time while calibrating: progress moves, memory stays small


def _embed_copies(
    encoder, paths: Sequence[str], seed: int, recipes: Sequence[str], progress: Progress
) -> SelfCopies | None:
    import torch

    from embedsearch.data.copies import STRENGTHS, make_copy
    from embedsearch.data.decode import DecodeError, load_image
    from embedsearch.data.sources import source_path

    # One stream a recipe, so the mild copies are the same whether or not strong ones are made too.
    rngs = {
        recipe: np.random.default_rng([seed, sorted(STRENGTHS).index(recipe)]) for recipe in recipes
    }
    originals: list[np.ndarray] = []
    copies: dict[str, list[np.ndarray]] = {recipe: [] for recipe in recipes}
    pending: dict[str, list] = {"": [], **{recipe: [] for recipe in recipes}}

    def embed_pending() -> None:
        if pending[""]:
            originals.append(encoder.embed_images(torch.stack(pending[""])))
            for recipe in recipes:
                copies[recipe].append(encoder.embed_images(torch.stack(pending[recipe])))
            for views in pending.values():
                views.clear()

    progress.start(f"calibrating: copies of {len(paths)} of your images", len(paths))
    for path in paths:
        try:
            image = load_image(source_path(path))  # sources of non-UTF-8 names are escaped
        except DecodeError:
            progress.advance(1)
            continue
        pending[""].append(encoder.preprocess(image))
        for recipe in recipes:
            pending[recipe].append(
                encoder.preprocess(
                    make_copy(np.asarray(image), min(image.size), recipe, rngs[recipe])
                )
            )
        if len(pending[""]) == COPY_BATCH:
            embed_pending()
        progress.advance(1)
    embed_pending()
    progress.stop()
    if sum(len(block) for block in originals) < MIN_CALIBRATION_IMAGES:
        return None
    return SelfCopies(
        np.concatenate(originals),
        {recipe: np.concatenate(blocks) for recipe, blocks in copies.items()},
    )


@dataclass(frozen=True)
class ThresholdChoice:
    """The default threshold, how it was chosen (``rule``, with its figures, for ``dedup.json``)
    and the same in plain words for people (``words``); ``copies`` mild self-copies were made,
    a share ``passing`` of them reach it (None when none could be made)."""

    value: float
    rule: str
    words: str
    copies: int = 0
    passing: float | None = None


# "~0.05 x N unrelated pairs above" as a reader would say it
_RARE = f"about {FALSE_PAIRS_PER_ROW * 100:g} unrelated pairs per 100 items"


def choose_threshold(
    sample: np.ndarray,
    n_total: int,
    copies: np.ndarray | None,
    whitened: bool = False,
    levels: np.ndarray | None = None,
) -> ThresholdChoice:
    """The default threshold (the module's rule) from a random ``sample`` of vectors, the corpus
    size and (optionally) mild self-copy scores; see :func:`default_threshold`.

    Example:
        >>> choice = choose_threshold(np.eye(8, dtype=np.float32), 8, None)
        >>> choice.value, choice.words.split(" (")[0]
        (0.95, '0.95, the floor used when no copies of your images can check the data')
    """
    null = null_bound(sample, n_total, levels=levels)
    null_text = (
        f"null {null:.4f} (~{FALSE_PAIRS_PER_ROW:g} x N unrelated pairs above, "
        f"from {len(sample)} rows)"
    )
    from_data = f"chosen from this data so that only {_RARE} score this high ({len(sample):,} "
    from_data += "random items compared)"
    if copies is None and not whitened:
        value = round(max(FALLBACK_FLOOR, null), 4)
        words = (
            f"{FALLBACK_FLOOR:g}, the floor used when no copies of your images can check the "
            f"data (its own figure, {null:.4f}, is where {_RARE} score)"
            if FALLBACK_FLOOR > null
            else f"{from_data}; no copies of your images could be made to check it"
        )
        return ThresholdChoice(
            value, f"no copy calibration; max({FALLBACK_FLOOR}, {null_text})", words
        )
    threshold = round(null, 4)
    if copies is None:
        words = f"{from_data}; no copies of your images could be made to check it"
        return ThresholdChoice(threshold, f"{null_text}; no copy check", words)
    passing = float(np.mean(copies >= threshold))
    rule = f"{null_text}; {passing:.0%} of {len(copies)} mild self-copies pass"
    words = (
        f"{from_data}; {passing:.0%} of {len(copies)} lightly edited copies of your own images "
        "(re-cropped, re-lit, re-saved as JPEG) reach it"
    )
    return ThresholdChoice(threshold, rule, words, len(copies), passing)


def default_threshold(
    sample: np.ndarray, n_total: int, copies: np.ndarray | None, whitened: bool = False
) -> tuple[float, str]:
    """``(threshold, rule)`` from a random sample of vectors, the corpus size and (optionally)
    copy scores.

    ``whitened``: the vectors are whitened (:mod:`embedsearch.dedup.whitening`), whose cosines
    need no raw-cosine floor.

    Example:
        >>> x = np.eye(8, dtype=np.float32)
        >>> threshold, rule = default_threshold(x, 8, np.linspace(0.8, 1.0, 21))
        >>> threshold, rule.split("; ")[1]
        (0.0, '100% of 21 mild self-copies pass')
        >>> default_threshold(x, 8, None)[0]
        0.95
    """
    choice = choose_threshold(sample, n_total, copies, whitened)
    return choice.value, choice.rule


def unrelated_pairs_above(
    sample: np.ndarray,
    threshold: float,
    n_total: int,
    block: int = 256,
    levels: np.ndarray | None = None,
) -> float:
    """About how many unrelated pairs of the whole corpus score at least ``threshold``: the share
    of ``sample``'s pairs that do (each row's best match left out, as for :func:`null_bound`)
    times the corpus's ``N (N - 1) / 2`` pairs.

    Example:
        >>> x = np.eye(4, dtype=np.float32)
        >>> unrelated_pairs_above(x, 0.5, 100), unrelated_pairs_above(x, -0.5, 100) > 0
        (0.0, True)
    """
    n = len(sample)
    if n < 3:
        return 0.0
    above = pairs = 0
    for i in range(0, n, block):
        scores = _masked_scores(sample, i, block, levels)
        rows = np.arange(len(scores))
        scores[rows, scores.argmax(axis=1)] = -np.inf  # each row's best match: maybe a copy
        above += int((scores >= threshold).sum())
        pairs += len(scores) * (n - 2)
    return above / max(pairs, 1) * n_total * (n_total - 1) / 2
