"""CLIP encoders from open_clip: any architecture, random init, a pretrained tag or a local file.

Radford et al. 2021, "Learning Transferable Visual Models From Natural Language
Supervision"; weights and architectures from open_clip (Ilharco et al.). The
project's tiny CPU configs (``configs/*.json``) and a run dir's own architecture are handed
to open_clip through its public ``local-dir:`` schema, so nothing is added to open_clip's
registry and ``openclip:tiny-clip`` works everywhere.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from embedsearch.encoders.base import Encoder, ImagePreprocess
from embedsearch.encoders.rundir import RunConfig
from embedsearch.encoders.weights import load_weights_file
from embedsearch.errors import ModelError

CONFIG_DIR = Path(__file__).parent / "configs"


def shipped_config(arch: str) -> dict[str, Any] | None:
    """The model JSON of a CPU config this project ships (``tiny-clip``), else None."""
    shipped = CONFIG_DIR / f"{arch}.json"
    return dict(json.loads(shipped.read_text())) if shipped.is_file() else None


class _OpenClipNotices(logging.Filter):
    """Holds back open_clip's log records while it builds a model, to pass on the true ones.

    open_clip logs through the root logger with ``logging.warning(...)``, which configures the
    root logger of a host that has not (``basicConfig``: every later record of every library
    printed as ``WARNING:name:...``); and when a run dir's or a file's weights are loaded after
    the build, its "initialized randomly" is false. So while installed (only then) the filter
    takes open_clip's records off the root logger, and a host without handlers gets a
    ``NullHandler`` so nothing is configured behind its back; :meth:`pass_on` repeats the
    records that hold, through the ``open_clip`` logger. The host's levels and handlers stay.
    """

    def __init__(self, folder_names: dict[str, str]) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.folder_names = folder_names  # temporary local-dir name -> the name the user gave

    def filter(self, record: logging.LogRecord) -> bool:
        if f"{os.sep}open_clip{os.sep}" not in record.pathname:
            return True
        self.records.append(record)
        return False

    def pass_on(self, weights_follow: bool) -> None:
        """Repeat the warnings that hold: none when weights are loaded after the build."""
        if weights_follow:
            return
        for record in self.records:
            message = record.getMessage()
            if record.levelno < logging.WARNING:
                continue
            named = any(folder in message for folder in self.folder_names)
            if named and "initialized" not in message:
                continue  # "no CLIP weights found in /tmp/...": the temporary folder, not news
            for folder, name in self.folder_names.items():
                message = message.replace(f"local-dir:{folder}", name).replace(folder, name)
            # through the library's logger: shown wherever its own warnings are
            logging.getLogger("embedsearch.open_clip").log(record.levelno, "open_clip: %s", message)


@contextmanager
def _open_clip_notices(folder_names: dict[str, str]) -> Iterator[_OpenClipNotices]:
    root = logging.getLogger()
    notices = _OpenClipNotices(folder_names)
    placeholder = None if root.handlers else logging.NullHandler()
    if placeholder is not None:
        root.addHandler(placeholder)
    root.addFilter(notices)
    try:
        yield notices
    finally:
        root.removeFilter(notices)
        if placeholder is not None:
            root.removeHandler(placeholder)


@contextmanager
def _open_clip_name(arch: str, model_cfg: dict[str, Any] | None) -> Iterator[str]:
    """The name open_clip builds ``arch`` by: its own, or ``local-dir:`` for a config as data."""
    if model_cfg is None:
        yield arch
        return
    with tempfile.TemporaryDirectory(prefix="embedsearch-clip-") as folder:
        (Path(folder) / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg}))
        yield f"local-dir:{folder}"


def create_clip_model(
    arch: str, pretrained: str | None = None, model_cfg: dict[str, Any] | None = None
) -> tuple[torch.nn.Module, Any]:
    """(open_clip model, its tokenizer): seeded random init, a downloadable tag or a local file.

    ``model_cfg`` (a run dir's architecture) builds a model open_clip has no name for.
    """
    import open_clip

    model_cfg_given = model_cfg is not None  # a run dir: its weights are loaded next
    if model_cfg is None and not arch.startswith(("hf-hub:", "local-dir:")):
        model_cfg = shipped_config(arch)
        if model_cfg is None and open_clip.get_model_config(arch) is None:
            raise ModelError(
                f"unknown open_clip architecture {arch!r}; "
                f"see `python -c 'import open_clip; print(open_clip.list_models())'`"
            )
    is_file = pretrained is not None and (os.path.sep in pretrained or Path(pretrained).is_file())
    tag = pretrained if pretrained and not is_file else None
    if tag and (model_cfg is not None or not open_clip.get_pretrained_cfg(arch, tag)):
        tags = [t for a, t in open_clip.list_pretrained() if a == arch]
        raise ModelError(
            f"{tag!r} is neither a file nor a pretrained tag of {arch}; "
            f"tags: {', '.join(tags) or 'none'}"
        )
    tag_options = _tag_weights(arch, tag) if tag else {}
    with _open_clip_name(arch, model_cfg) as name:
        folders = {name.removeprefix("local-dir:"): arch} if name != arch else {}
        with _open_clip_notices(folders) as notices, torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # random init must be reproducible: same spec -> same fingerprint
            try:
                model = open_clip.create_model(name, **tag_options)
            except RuntimeError as e:
                raise ModelError(f"cannot create openclip:{arch}/{tag}: {e}") from e
            tokenizer = open_clip.get_tokenizer(name)
        notices.pass_on(weights_follow=is_file or model_cfg_given)
    if is_file and pretrained is not None:
        try:
            model.load_state_dict(load_weights_file(pretrained), strict=True)
        except RuntimeError as e:
            raise ModelError(f"weights in {pretrained} do not fit {arch}: {str(e)[:300]}") from e
    return model.eval(), tokenizer


def _tag_weights(arch: str, tag: str) -> dict[str, Any]:
    """``create_model`` options for a pretrained tag: its cached file when there is one.

    Given the tag, open_clip asks the hub first even when the file is cached; without network that
    is 5 retries a file (~56 s) before it fails, printing each retry twice. A cached file is
    handed over by path, with the tag's preprocessing (what open_clip would merge in); a tag
    not in the cache is refused at once when the hub cannot be reached.
    """
    import open_clip

    cfg = open_clip.get_pretrained_cfg(arch, tag)
    cached = _cached_tag_file(cfg)
    if cached is None:
        _require_hub(arch, tag, cfg)
        return {"pretrained": tag}
    keys = ("mean", "std", "interpolation", "resize_mode", "fill_color")
    return {
        "pretrained": cached,
        "force_preprocess_cfg": {key: cfg[key] for key in keys if key in cfg},
    }


def _cached_tag_file(cfg: dict[str, Any]) -> str | None:
    """Where open_clip's download of a tag's weights is already cached, else None."""
    if cfg.get("file"):
        return str(cfg["file"])
    hub = str(cfg.get("hf_hub") or "")
    if not hub:
        url = str(cfg.get("url") or "")
        path = Path("~/.cache/clip").expanduser() / os.path.basename(url)  # open_clip's place
        return str(path) if url and path.is_file() else None
    from huggingface_hub import try_to_load_from_cache

    model_id, filename = os.path.split(hub)
    filename = filename or "open_clip_pytorch_model.bin"  # open_clip's HF_WEIGHTS_NAME
    # open_clip prefers a .safetensors twin of the file (its _get_safe_alternatives)
    names = [filename]
    if filename == "open_clip_pytorch_model.bin":
        names.insert(0, "open_clip_model.safetensors")
    elif filename.endswith((".bin", ".pth")):
        names.insert(0, filename[:-4] + ".safetensors")
    for name in names:
        found = try_to_load_from_cache(model_id, name)
        if isinstance(found, str):
            return found
    return None


def _require_hub(arch: str, tag: str, cfg: dict[str, Any]) -> None:
    """Refuse at once a tag to download when downloads are off or the hub is unreachable."""
    import socket
    from urllib.parse import urlparse

    fix = f"download it once with network, or pass the weights file as openclip:{arch}/PATH"
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise ModelError(
            f"openclip:{arch}/{tag}: the weights are not in the local cache and HF_HUB_OFFLINE is "
            f"set: {fix}"
        )
    host = "huggingface.co" if cfg.get("hf_hub") else urlparse(str(cfg.get("url"))).hostname
    try:
        socket.create_connection((host or "huggingface.co", 443), timeout=5).close()
    except OSError as e:
        raise ModelError(
            f"openclip:{arch}/{tag}: the weights are not in the local cache and {host} cannot be "
            f"reached ({e}): {fix}"
        ) from e


class OpenClipEncoder(Encoder):
    """Image + text encoder around an open_clip CLIP model."""

    tokenizer: Any = None

    def _forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        clip: Any = self.model  # open_clip's CLIP: encode_image/encode_text are its own
        return clip.encode_image(pixels)

    def _forward_texts(self, texts: list[str]) -> torch.Tensor:
        clip: Any = self.model
        return clip.encode_text(self.tokenizer(texts).to(self.device))


def preprocess_cfg_of(pp: dict[str, Any]) -> dict[str, Any]:
    """open_clip's ``preprocess_cfg`` of a model, complete and JSON-ready (the run dir's copy).

    ``model.visual.preprocess_cfg`` already holds the pretrained tag's overrides
    (``open_clip.get_pretrained_cfg``): SigLIP's ``squash``, CLIPA's ``bilinear``, ...

    Example:
        >>> preprocess_cfg_of({"size": (224, 224), "mean": (0.5,) * 3, "std": (0.5,) * 3})
        ... # doctest: +NORMALIZE_WHITESPACE
        {'size': 224, 'mode': 'RGB', 'mean': [0.5, 0.5, 0.5], 'std': [0.5, 0.5, 0.5],
         'interpolation': 'bicubic', 'resize_mode': 'shortest', 'fill_color': 0}
    """
    size = pp["size"]
    if not isinstance(size, int) and size[0] == size[1]:
        size = int(size[0])  # open_clip treats (n, n) and n alike
    return ImagePreprocess.of_cfg({**pp, "size": size}).to_cfg()


def openclip_config(arch: str, model: Any) -> RunConfig:
    """The run-dir config of an open_clip model (architecture as data + preprocessing)."""
    import open_clip

    pp = model.visual.preprocess_cfg
    size = pp["size"] if isinstance(pp["size"], int) else int(pp["size"][0])
    model_cfg = shipped_config(arch) or open_clip.get_model_config(arch) or {}
    dim = model_cfg.get("embed_dim") or model.visual.output_dim
    return RunConfig(
        family="openclip",
        arch=arch,
        model_cfg=model_cfg,
        image_size=size,
        mean=list(pp["mean"]),
        std=list(pp["std"]),
        dim=int(dim),
        context_length=int(model_cfg.get("text_cfg", {}).get("context_length", 77)),
        preprocess_cfg=preprocess_cfg_of(pp),
        modalities=["image", "text"],
        embedding="CLIP joint image-text space",
    )


def encoder_from_model(
    arch: str,
    model: torch.nn.Module,
    tokenizer: Any,
    spec: str,
    config: RunConfig | None = None,
) -> OpenClipEncoder:
    """Wrap a built open_clip model and its tokenizer as an :class:`OpenClipEncoder`."""
    config = config or openclip_config(arch, model)
    encoder = OpenClipEncoder(
        spec=spec,
        options={},
        dim=config.dim,
        modalities=frozenset(config.modalities),
        preprocess=ImagePreprocess.of(config),
        config=config,
        model=model,
    )
    encoder.tokenizer = tokenizer
    return encoder


def load_openclip(target: str, spec: str) -> OpenClipEncoder:
    """``ARCH`` or ``ARCH/PRETRAINED`` (tag or path) -> encoder. ``hf-hub:`` names pass through."""
    if target.startswith(("hf-hub:", "local-dir:")):
        arch, pretrained = target, None
    else:
        arch, _, pretrained = target.partition("/")
    if not arch:
        raise ModelError(f"model spec {spec!r} names no architecture, e.g. openclip:ViT-B-32")
    model, tokenizer = create_clip_model(arch, pretrained or None)
    return encoder_from_model(arch, model, tokenizer, spec)


def load_openclip_run(config: RunConfig, weights: dict[str, torch.Tensor], spec: str) -> Encoder:
    """The CLIP model a run dir describes, with its trained weights."""
    model, tokenizer = create_clip_model(config.arch, None, model_cfg=config.model_cfg)
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        raise ModelError(f"weights of {spec} do not fit its config: {str(e)[:300]}") from e
    return encoder_from_model(config.arch, model, tokenizer, spec, config)
