"""Where the model of an embedding or index dir is found again, from any working dir.

An embedding dir and an index dir record the model that made their vectors (spec, options,
fingerprint), and text/image queries must be embedded by that same model. A spec such as
``simclr:resnet18`` or ``openclip:ViT-B-32/laion2b_s34b_b79k`` names the model anywhere and is
kept as typed; a run dir path typed as ``demo/model`` did not survive a change of working dir or
a move of the dir. So a run dir is recorded three ways:

- its resolved absolute path (:func:`recorded_spec`), not the path as typed;
- a digest of its ``config.json`` + ``model.safetensors`` bytes (:func:`run_dir_digest`), a cheap
  check (no torch) that a copy holds the same model;
- a copy carried inside the dir itself (:func:`carry_run_dir`: hard links where the file system
  allows, so no second copy of the weights on one disk), so a moved or copied dir answers
  queries with the run dir gone.

:func:`load_recorded` tries, in order: ``--model PATH`` given by the user, the carried copy, the
recorded path, and for dirs written before the path was resolved, the recorded relative path
under the dir's parents. Every candidate must give the recorded fingerprint; when none is found
the error names the recorded path and says how to point at the model.

Example:
    >>> recorded_spec("simclr:resnet18"), recorded_spec("tiny-clip")
    ('simclr:resnet18', 'tiny-clip')
    >>> rec = ModelRecord("runs/a", {}, "ab12", home=Path("idx"), copy="model")  # doctest: +SKIP
    >>> load_recorded(rec).fingerprint                                           # doctest: +SKIP
    'ab12...'
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from embedsearch.errors import MismatchError, ModelError

if TYPE_CHECKING:
    from embedsearch.encoders.base import Encoder

# Files of a run dir that make its model (the rest -- metrics, plots, checkpoint -- stay behind);
# rundir.CONFIG_FILE and WEIGHTS_FILE, named here so that this module imports no torch.
MODEL_FILES = ("config.json", "model.safetensors")
# Carried too when present: the loss history a "barely trained" warning reads (small, copied).
HISTORY_FILE = "metrics.jsonl"


def is_path_spec(spec: str) -> bool:
    """True when ``spec`` names a run dir by path rather than a registered model.

    Example:
        >>> is_path_spec("demo/model"), is_path_spec("openclip:RN50/openai"), is_path_spec("tiny")
        (True, False, False)
    """
    from embedsearch.encoders import _LOADERS, SHORT_NAMES

    spec = str(spec).strip()
    if spec in SHORT_NAMES:
        return False
    prefix, sep, _ = spec.partition(":")
    return not (sep and prefix in _LOADERS) or Path(spec).expanduser().is_dir()


def recorded_spec(spec: str) -> str:
    """The spec to write into a manifest: run dirs and weight files as absolute paths.

    A tag stays a tag; ``openclip:ARCH/FILE`` and ``openclip:local-dir:DIR`` get their path
    resolved, so the record means the same file from any working dir.

    Example:
        >>> recorded_spec("openclip:ViT-B-32/laion2b_s34b_b79k")
        'openclip:ViT-B-32/laion2b_s34b_b79k'
        >>> recorded_spec("runs/a") == str(Path("runs/a").resolve())
        True
    """
    spec = str(spec).strip()
    if is_path_spec(spec):
        return str(Path(spec).expanduser().resolve())
    if spec.startswith("openclip:local-dir:"):
        folder = spec.removeprefix("openclip:local-dir:")
        return "openclip:local-dir:" + str(Path(folder).expanduser().resolve())
    prefix, _, target = spec.partition(":")
    arch, sep, pretrained = target.partition("/")
    if (
        prefix == "openclip"
        and not arch.startswith("hf-hub:")
        and sep
        and (os.sep in pretrained or Path(pretrained).is_file())
    ):
        return f"openclip:{arch}/{Path(pretrained).expanduser().resolve()}"
    return spec


def is_run_dir(path: str | Path) -> bool:
    """True when ``path`` holds a run dir's model files (as ``rundir.is_run_dir``)."""
    return all((Path(path) / name).is_file() for name in MODEL_FILES)


def run_dir_digest(path: str | Path) -> str:
    """blake2b of a run dir's ``config.json`` and ``model.safetensors`` bytes (streamed).

    Equal digests mean the same model files; cheap enough for every build and query (no torch).
    """
    digest = hashlib.blake2b(digest_size=16)
    for name in MODEL_FILES:
        digest.update(name.encode())
        with open(Path(path) / name, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def carry_run_dir(run_dir: str | Path, dest: str | Path, digest: str | None = None) -> str:
    """Put the model files of ``run_dir`` into ``dest`` (hard links, else copies); its digest.

    Each file goes in under a temporary name and is renamed, so ``dest`` never holds half a file.
    A hard link keeps the bytes the vectors were made with even when ``pretrain --resume`` later
    replaces the run dir's files (they are replaced by rename, never rewritten in place).
    ``digest`` (when known) must match what was carried, else :class:`MismatchError`.
    """
    run_dir, dest = Path(run_dir), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    names = [*MODEL_FILES, *([HISTORY_FILE] if (run_dir / HISTORY_FILE).is_file() else [])]
    for name in names:
        tmp = dest / f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"  # ranks carry at once
        try:
            if name == HISTORY_FILE:
                raise OSError("appended to while training: copy it")
            os.link(run_dir / name, tmp)
        except OSError:
            shutil.copyfile(run_dir / name, tmp)
        os.replace(tmp, dest / name)
    carried = run_dir_digest(dest)
    if digest is not None and carried != digest:
        raise MismatchError(
            f"the model files in {run_dir} changed since its vectors were made "
            "(another digest): re-embed and re-index"
        )
    return carried


class _RecordedModel(Protocol):
    """What a manifest or an ``index.json`` says about its model (both have these fields)."""

    model: str
    model_options: dict[str, Any]
    fingerprint: str
    model_copy: str | None
    model_digest: str | None


@dataclass
class ModelRecord:
    """The model a dir recorded, and where that dir is (``home``) to find a carried copy.

    ``copy``: the carried run dir, relative to ``home``; ``digest``: :func:`run_dir_digest`.
    """

    model: str
    options: dict[str, Any]
    fingerprint: str
    home: Path | None = None
    copy: str | None = None
    digest: str | None = None

    @classmethod
    def of(cls, doc: _RecordedModel, home: str | Path) -> ModelRecord:
        """The record of a manifest or ``index.json`` read from the dir ``home``."""
        return cls(
            doc.model,
            dict(doc.model_options),
            doc.fingerprint,
            Path(home).expanduser().resolve(),
            doc.model_copy,
            doc.model_digest,
        )

    def carried(self) -> Path | None:
        """The carried copy inside ``home``, when the dir has one."""
        if self.home is None or self.copy is None:
            return None
        return self.home / self.copy

    def candidates(self) -> list[Path]:
        """Run dirs that may hold the model, best first (see the module docstring)."""
        carried = self.carried()
        found = [] if carried is None else [carried]
        recorded = Path(self.model).expanduser()
        found.append(recorded)
        if not recorded.is_absolute() and self.home is not None:
            # written before paths were resolved: relative to where the command ran, which
            # was usually a parent of the dir (``demo/model`` beside ``demo/index``)
            found += [parent / recorded for parent in self.home.parents]
        return list(dict.fromkeys(found))  # each once, in order


def find_run_dir(record: ModelRecord) -> Path | None:
    """The first candidate run dir whose files match the recorded digest (no model is loaded).

    None when the record is not a run dir, has no digest (older dirs: only loading the model
    can tell, :func:`load_recorded`), or no candidate matches.
    """
    if record.digest is None or not is_path_spec(record.model):
        return None
    for path in record.candidates():
        if is_run_dir(path) and run_dir_digest(path) == record.digest:
            return path
    return None


def load_recorded(record: ModelRecord, override: str | None = None) -> Encoder:
    """Load the model that made a dir's vectors, checked by fingerprint (module docstring).

    ``override``: a model spec the user gave (``query --model PATH``); it must have the recorded
    fingerprint. Raises :class:`ModelError` naming the recorded model when none is found, and
    :class:`MismatchError` when the only candidates hold other weights.
    """
    from embedsearch.encoders import load_encoder

    if override is not None:
        encoder = load_encoder(override, **_size_options(override, record.options))
        _require_fingerprint(encoder, record, f"--model {override}")
        return encoder
    if not is_path_spec(record.model):
        encoder = load_encoder(record.model, **record.options)
        _require_fingerprint(encoder, record, f"model {record.model}")
        return encoder
    changed: list[str] = []
    for path in record.candidates():
        if not is_run_dir(path):
            continue
        if record.digest is not None and run_dir_digest(path) != record.digest:
            changed.append(str(path))
            continue
        encoder = load_encoder(str(path), **_size_options(str(path), record.options))
        if encoder.fingerprint == record.fingerprint:
            return encoder
        changed.append(str(path))
    raise _not_found(record, changed)


def _size_options(spec: str, options: dict[str, Any]) -> dict[str, Any]:
    # a run dir has its own input size: only the other options apply to it
    if Path(spec).expanduser().is_dir():
        return {k: v for k, v in options.items() if k != "image_size"}
    return dict(options)


def _require_fingerprint(encoder: Encoder, record: ModelRecord, what: str) -> None:
    if encoder.fingerprint != record.fingerprint:
        raise MismatchError(
            f"{what} gives fingerprint {encoder.fingerprint[:12]}, but the vectors were made by "
            f"{record.model} ({record.fingerprint[:12]}): that is another model or its weights "
            "changed; re-embed and re-index with one model"
        )


def _not_found(record: ModelRecord, changed: list[str]) -> ModelError | MismatchError:
    where = f" (for {record.home})" if record.home is not None else ""
    hint = (
        "pass the run dir that made the vectors with --model PATH (checked by fingerprint)"
        " or re-embed and re-index"
    )
    if changed:
        return MismatchError(
            f"the recorded model {record.model}{where} now holds other weights "
            f"(fingerprint {record.fingerprint[:12]} expected; checked {', '.join(changed)}): "
            + hint
        )
    return ModelError(
        f"the model recorded as {record.model}{where} is not there and the dir carries no copy: "
        + hint
    )
