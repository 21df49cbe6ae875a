"""The :class:`Encoder` interface shared by every model family.

A backend implements ``_forward_images`` (and ``_forward_texts`` when it has a
text tower) for one batch; the base class handles devices, inference mode, autocast,
channels_last, splitting large inputs into batches and L2 normalisation, so every
encoder returns L2-normalised float32 numpy arrays.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from embedsearch.devices import autocast, resolve_device, resolve_precision
from embedsearch.encoders.rundir import RunConfig
from embedsearch.errors import ModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Inputs per forward pass when a caller hands over more (e.g. a file of query texts).
BATCH_SIZE = 256
# open_clip's preprocess_cfg vocabularies (open_clip.transform.PreprocessCfg).
Interpolation = Literal["bicubic", "bilinear"]
ResizeMode = Literal["shortest", "longest", "squash"]


@dataclass(frozen=True)
class ImagePreprocess:
    """How images become model input, exactly as open_clip's eval transform does it.

    ``resize_mode`` ``shortest`` scales the shorter side to the size and centre-crops,
    ``squash`` scales both sides to the size (aspect ratio not kept), ``longest`` scales the
    longer side and pads with ``fill_color``; ``interpolation`` is ``bicubic`` or ``bilinear``.
    The geometry makes the same torchvision calls as ``open_clip.image_transform``, so the
    pixels are open_clip's (parity test: ``tests/encoders/test_preprocess_parity.py``). Picklable,
    so DataLoader workers can run it. Example:

        >>> p = ImagePreprocess(64, resize_mode="squash")
        >>> from PIL import Image
        >>> tuple(p(Image.new("RGB", (100, 50))).shape)
        (3, 64, 64)
    """

    image_size: int | tuple[int, int]
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: Interpolation = "bicubic"
    resize_mode: ResizeMode = "shortest"
    fill_color: int = 0

    @classmethod
    def of(cls, config: RunConfig) -> ImagePreprocess:
        """The preprocessing a run config describes (``preprocess_cfg`` where it has one)."""
        defaults = {"size": config.image_size, "mean": config.mean, "std": config.std}
        return cls.of_cfg({**defaults, **(config.preprocess_cfg or {})})

    @classmethod
    def of_cfg(cls, pp: dict[str, Any]) -> ImagePreprocess:
        """From open_clip's ``preprocess_cfg`` dict (keys size, mean, std; the rest optional)."""
        size = pp["size"]
        return cls(
            size if isinstance(size, int) else (int(size[0]), int(size[1])),
            tuple(pp["mean"]),
            tuple(pp["std"]),
            "bilinear" if pp.get("interpolation") == "bilinear" else "bicubic",  # random: bicubic
            pp.get("resize_mode") or "shortest",
            int(pp.get("fill_color") or 0),
        )

    @property
    def draft_size(self) -> int:
        """The longest output side: what JPEG draft decoding must keep detail for."""
        size = self.image_size
        return size if isinstance(size, int) else max(size)

    def to_cfg(self) -> dict[str, Any]:
        """open_clip's ``preprocess_cfg`` dict for this preprocessing (run dirs record it).

        Example:
            >>> ImagePreprocess(32).to_cfg()["resize_mode"]
            'shortest'
        """
        size = self.image_size
        return {
            "size": size if isinstance(size, int) else list(size),
            "mode": "RGB",
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "resize_mode": self.resize_mode,
            "fill_color": self.fill_color,
        }

    def __call__(self, image: Any) -> torch.Tensor:
        """PIL RGB image -> float32 CHW tensor."""
        image = resize_and_crop(image, self)
        array = np.asarray(image, dtype=np.float32) / 255.0
        scaled = (array - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return torch.from_numpy(np.ascontiguousarray(scaled.transpose(2, 0, 1)))


def resize_and_crop(image: Any, pp: ImagePreprocess) -> Any:
    """The geometry of ``open_clip.image_transform(is_train=False)``, on a PIL image.

    Same torchvision calls (:mod:`.geometry`) with the same sizes and rounding, so the result is
    open_clip's pixel for pixel; its non-square ``shortest`` branch resizes bicubic whatever the
    config.
    """
    from embedsearch.encoders import geometry as F

    mode: F.Mode = pp.interpolation
    size = pp.image_size
    height, width = (size, size) if isinstance(size, int) else size
    if pp.resize_mode == "squash":
        return F.resize(image, [height, width], mode)
    if pp.resize_mode == "longest":
        image = F.resize(image, _keep_ratio(image, height, width, longest=True), mode)
        return _crop_or_pad(image, height, width, pp.fill_color)
    if height == width:
        image = F.resize(image, [height], mode)  # shorter side -> size, longer side truncated
    else:
        image = F.resize(image, _keep_ratio(image, height, width, longest=False), "bicubic")
    return F.center_crop(image, [height, width])


def _keep_ratio(image: Any, height: int, width: int, longest: bool) -> list[int]:
    # open_clip's ResizeKeepRatio.get_params without its random scale/aspect (eval only).
    h, w = image.size[::-1]
    ratios = (h / height, w / width)
    ratio = max(ratios) if longest else min(ratios)
    return [round(h / ratio), round(w / ratio)]


def _crop_or_pad(image: Any, height: int, width: int, fill: int) -> Any:
    # open_clip's center_crop_or_pad: pad (split floor/ceil) to at least the size, then crop.
    from embedsearch.encoders import geometry as F

    w, h = image.size
    if width > w or height > h:
        pad_w, pad_h = max(width - w, 0), max(height - h, 0)
        image = F.pad(image, [pad_w // 2, pad_h // 2, (pad_w + 1) // 2, (pad_h + 1) // 2], fill)
        w, h = image.size
        if (w, h) == (width, height):
            return image
    return F.crop(
        image, int(round((h - height) / 2.0)), int(round((w - width) / 2.0)), height, width
    )


def fingerprint_of(config: dict[str, Any], state_dict: dict[str, torch.Tensor]) -> str:
    """Hash of a config and weights: equal fingerprints mean interchangeable vectors."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(
            tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
        )
    return digest.hexdigest()


@dataclass
class Encoder:
    """A loaded model that maps images and/or texts to L2-normalised float32 vectors.

    Attributes:
        spec: the model spec string it was loaded from (``simclr:resnet18``, a run dir, ...).
        options: loader options needed to rebuild it (e.g. ``{"image_size": 64}``).
        dim: embedding dimension.
        modalities: ``{"image"}`` or ``{"image", "text"}``.
        preprocess: image preprocessing (size, normalisation).
        config: the architecture description written to run dirs and hashed into the fingerprint.
        flip_average: embed each image and its mirror image and average the two (unit) vectors,
            so a mirrored copy gets the same vector; twice the model work
            (see :meth:`use_flip_average`).
        trained: False for random weights (``simclr:ARCH``, ``openclip:ARCH`` without a tag,
            ``tiny-clip``): manifests record it and every use warns.
        warnings: one-line warnings logged when it was loaded (untrained, barely trained).

    Example:
        >>> enc = load_encoder("simclr:resnet18", image_size=32)   # doctest: +SKIP
        >>> enc.embed_images(torch.zeros(2, 3, 32, 32)).shape      # doctest: +SKIP
        (2, 512)
    """

    spec: str
    options: dict[str, Any]
    dim: int
    modalities: frozenset[str]
    preprocess: ImagePreprocess
    config: RunConfig
    model: torch.nn.Module
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    flip_average: bool = False
    trained: bool = True
    warnings: list[str] = field(default_factory=list)
    _fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        """Hash of config + weights (+ flip averaging: it changes every vector), computed once."""
        if self._fingerprint is None:
            config = self.config.architecture()
            if self.flip_average:
                config["flip_average"] = True
            self._fingerprint = fingerprint_of(config, self.model.state_dict())
        return self._fingerprint

    def use_flip_average(self) -> Encoder:
        """Mirror-invariant image vectors: the normalised mean of an image's and its mirror's.

        Copies of photos are often mirrored, and even SimCLR (trained with random flips) places an
        image and its mirror apart; on the strong-copy benchmark averaging the two raised copy
        detection F1 (``benchmarks/RESULTS.md``). Recorded in ``options``, so the embedding dir's
        queries and dedup calibration embed the same way. Text vectors are unchanged.

        Example:
            >>> enc = load_encoder("simclr:resnet18").use_flip_average()   # doctest: +SKIP
            >>> enc.options["flip_average"]                               # doctest: +SKIP
            True
        """
        if "image" not in self.modalities:
            raise ModelError(
                f"model {self.spec} has no image tower: flip averaging applies to images"
            )
        if self._fingerprint is not None and not self.flip_average:
            self._fingerprint = None  # the vectors change, so does the fingerprint
        self.flip_average = True
        self.options = {**self.options, "flip_average": True}
        return self

    def to(self, device: str = "auto", precision: str = "fp32") -> Encoder:
        """Move to ``device`` (auto/cpu/cuda) and use ``precision`` (auto/fp32/bf16/fp16)."""
        _ = self.fingerprint  # hash the weights before any conversion (e.g. to half precision)
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        self.model.to(self.device)
        if self.device.type == "cuda":
            self.model.to(memory_format=torch.channels_last)
        return self

    @torch.inference_mode()
    def embed_images(self, pixels: torch.Tensor) -> np.ndarray:
        """Preprocessed images (N, 3, H, W) -> (N, dim) L2-normalised float32."""
        parts = [self._embed_image_batch(pixels[i : i + BATCH_SIZE]) for i in _starts(len(pixels))]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _embed_image_batch(self, pixels: torch.Tensor) -> np.ndarray:
        pixels = pixels.to(self.device, non_blocking=True)
        if self.device.type == "cuda":
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.dtype):
            features = self._forward_images(pixels)
            if self.flip_average:
                # Each view normalised first, so neither dominates the mean by its norm.
                mirrored = self._forward_images(pixels.flip(-1))
                features = torch.nn.functional.normalize(
                    features.float(), dim=-1
                ) + torch.nn.functional.normalize(mirrored.float(), dim=-1)
        return _normalise(features)

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> (N, dim) L2-normalised float32. Only for encoders with a text tower."""
        if "text" not in self.modalities:
            raise ModelError(
                f"model {self.spec} has no text tower (image-only); "
                "text queries need a CLIP model (openclip:..., tiny-clip or a CLIP run dir)"
            )
        texts = list(texts)
        parts = []
        for start in _starts(len(texts)):
            with autocast(self.device, self.dtype):
                parts.append(_normalise(self._forward_texts(texts[start : start + BATCH_SIZE])))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """One batch of preprocessed images -> raw features (what a backend implements)."""
        raise NotImplementedError

    def _forward_texts(self, texts: list[str]) -> torch.Tensor:
        """One batch of texts -> raw features (backends with a text tower)."""
        raise NotImplementedError


def _starts(n: int) -> range:
    return range(0, max(n, 1), BATCH_SIZE)  # an empty input still gives one (empty) batch


def _normalise(features: torch.Tensor) -> np.ndarray:
    features = torch.nn.functional.normalize(features.float(), dim=-1)
    return features.cpu().numpy().astype(np.float32, copy=False)
