"""``dedup FOLDER``: from a folder of images to the duplicate report in one call.

The steps a user would otherwise chain by hand, with the settings that measured best for copy
detection (benchmarks/RESULTS.md, issues 6 and 20):

1. pretrain SimCLR with the ``copy-detection`` preset (:mod:`embedsearch.train.presets`) on
   the folder, or on ``pretrain_on`` (other images of the same kind, which measured better when
   the folder is small), into ``WORK/model``; its time is said before it starts and estimated
   from this machine after the first steps. A finished model in ``WORK/model`` trained on the
   same folder with the same preset is reused, so a second run (another threshold) is quick;
   an interrupted one resumes from its checkpoint.
2. embed the folder with ``--flip-average`` (an image and its mirror, averaged: +0.14 F1 on
   strong copies) into ``WORK/embeddings``;
3. :func:`~embedsearch.dedup.find_duplicates` with its calibrated threshold and whitening, plus
   the perceptual-hash stage for near-exact copies (:mod:`embedsearch.dedup.phash`).

``WORK`` defaults to ``OUT.work`` beside ``OUT``; ``OUT`` is an ordinary dedup result dir.

Example:
    >>> r = dedup_image_folder("photos/", out="dups/")        # doctest: +SKIP
    >>> r.dedup.groups, r.model                                # doctest: +SKIP
    (12, PosixPath('dups.work/model'))
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from embedsearch.choices import SimCLRPreset
from embedsearch.dedup.find import find_duplicates
from embedsearch.dedup.options import Keep
from embedsearch.dedup.outputs import DedupResult
from embedsearch.dedup.phash import DEFAULT_PHASH_DISTANCE
from embedsearch.encoders.rundir import RunConfig, is_run_dir
from embedsearch.errors import InputError
from embedsearch.progress import NullProgress, Progress
from embedsearch.train.checkpoint import CHECKPOINT_DIR
from embedsearch.train.presets import images_per_second

Notify = Callable[[str], None]


@dataclass
class FolderDedupResult:
    """The dedup result plus where the model and embeddings are, and each stage's seconds."""

    dedup: DedupResult
    model: str
    embeddings: Path
    trained: bool  # False when a model was given or reused
    seconds: dict[str, float] = field(default_factory=dict)


def dedup_image_folder(
    folder: str | Path,
    *,
    out: str | Path,
    work: str | Path | None = None,
    model: str | None = None,
    pretrain_on: str | Path | None = None,
    preset: SimCLRPreset = "copy-detection",
    epochs: int | None = None,
    threshold: float | None = None,
    keep: Keep = "first",
    phash: int | None = DEFAULT_PHASH_DISTANCE,
    flip_average: bool = True,
    whiten: bool | None = None,
    local_scaling: bool | None = None,
    threads: int | None = None,
    progress: Progress | None = None,
    notify: Notify | None = None,
) -> FolderDedupResult:
    """Pretrain (unless ``model`` is given), embed and deduplicate the images of ``folder``.

    ``phash``: Hamming distance of the perceptual-hash stage (None: off). ``whiten`` and
    ``local_scaling`` as for :func:`~embedsearch.dedup.find_duplicates` (None: calibrated).
    ``notify`` receives plain lines about the stages (the time estimate first).
    """
    from embedsearch.train.simclr import list_images

    say = notify or (lambda line: None)
    progress = progress or NullProgress()
    folder, out = Path(folder), Path(out)
    work = Path(work) if work is not None else out.with_name(out.name + ".work")
    images = len(list_images(folder))
    seconds: dict[str, float] = {}
    trained = False
    if model is None:
        tic = time.perf_counter()
        model, trained = _pretrained_model(
            Path(pretrain_on) if pretrain_on is not None else folder,
            work / "model",
            preset,
            epochs,
            threads,
            progress,
            say,
        )
        seconds["pretrain"] = time.perf_counter() - tic
    tic = time.perf_counter()
    embeddings = _embed(folder, model, work / "embeddings", flip_average, progress, say, images)
    seconds["embed"] = time.perf_counter() - tic
    tic = time.perf_counter()
    say("dedup: calibrating the threshold on self-made copies, then searching pairs")
    result = find_duplicates(
        embeddings,
        out=out,
        threshold=threshold,
        keep=keep,
        whiten=whiten,
        local_scaling=local_scaling,
        phash=phash,
        progress=progress,
    )
    seconds["dedup"] = time.perf_counter() - tic
    return FolderDedupResult(result, model, embeddings, trained, seconds)


def _pretrained_model(
    train_dir: Path,
    run_dir: Path,
    preset: SimCLRPreset,
    epochs: int | None,
    threads: int | None,
    progress: Progress,
    say: Notify,
) -> tuple[str, bool]:
    """A copy-detection SimCLR run dir for ``train_dir``: reused when finished, else trained."""
    from embedsearch.train.simclr import list_images, pretrain_simclr, resolve_recipe

    n = len(list_images(train_dir))
    recipe, planned, small = resolve_recipe(preset, n, epochs=epochs)
    done = _finished_epochs(run_dir, train_dir, preset)
    if done is not None and done >= planned:
        say(f"pretrain: reusing the finished model in {run_dir} ({done} epochs on {train_dir})")
        return str(run_dir), False
    steps = planned * max(1, n // recipe.batch_size)
    minutes = steps * recipe.batch_size / images_per_second(recipe.image_size, small) / 60
    say(
        f"pretrain: SimCLR, {preset} preset, on the {n} images of {train_dir}: {planned} epochs "
        f"({steps} steps), about {minutes:.0f} min on 2 CPU cores (an estimate from this "
        f"machine follows after the first steps); model -> {run_dir}"
    )
    pretrain_simclr(
        train_dir,
        out=run_dir,
        preset=preset,
        epochs=planned,
        resume=done is not None,
        threads=threads,
        progress=progress,
        notify=say,
    )
    return str(run_dir), True


def _finished_epochs(run_dir: Path, train_dir: Path, preset: str) -> int | None:
    """Epochs already in ``run_dir`` when it is this folder's run of this preset; None when
    there is nothing to continue. Refuses a ``run_dir`` that holds something else."""
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return None
    if not (run_dir / CHECKPOINT_DIR).exists():
        raise InputError(
            f"{run_dir} exists and is not a model this command trained: "
            "use another --work, or pass it with --model"
        )
    if not is_run_dir(run_dir):
        return 0  # interrupted in its first epoch: the checkpoint resumes it
    training = RunConfig.read(run_dir / "config.json").training or {}
    if training.get("image_dir") != str(train_dir.resolve()) or training.get("preset") != preset:
        raise InputError(
            f"{run_dir} holds a model trained on {training.get('image_dir')} "
            f"(preset {training.get('preset')}): use another --work, or pass it with --model"
        )
    return int(training.get("epochs_done", 0))


def _embed(
    folder: Path,
    model: str,
    out: Path,
    flip_average: bool,
    progress: Progress,
    say: Notify,
    images: int,
) -> Path:
    from embedsearch.embedding import embed

    say(f"embed: {images} images with {model}" + (", flip-averaged" if flip_average else ""))
    if out.exists():
        shutil.rmtree(out)  # this command's own scratch copy; the model may have changed
    embed(folder, model=model, out=out, flip_average=flip_average, progress=progress)
    return out
