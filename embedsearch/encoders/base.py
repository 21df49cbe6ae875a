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
from typing import Any

import numpy as np
import torch

from embedsearch.devices import autocast, resolve_device, resolve_precision
from embedsearch.encoders.rundir import RunConfig
from embedsearch.errors import ModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Inputs per forward pass when a caller hands over more (e.g. a file of query texts).
BATCH_SIZE = 256


@dataclass(frozen=True)
class ImagePreprocess:
    """How images become model input: shorter side to ``image_size``, centre crop, normalise.

    Picklable, so DataLoader workers can run it. Example:
        >>> ImagePreprocess(64).image_size
        64
    """

    image_size: int
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    @classmethod
    def of(cls, config: RunConfig) -> ImagePreprocess:
        """The preprocessing a run config describes."""
        return cls(int(config.image_size), tuple(config.mean), tuple(config.std))

    def __call__(self, image: Any) -> torch.Tensor:
        """PIL RGB image -> float32 CHW tensor."""
        from PIL import Image

        size = self.image_size
        w, h = image.size
        scale = size / min(w, h)
        new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
        image = image.resize((new_w, new_h), Image.Resampling.BICUBIC, reducing_gap=3.0)
        left, top = (new_w - size) // 2, (new_h - size) // 2
        image = image.crop((left, top, left + size, top + size))
        array = np.asarray(image, dtype=np.float32) / 255.0
        scaled = (array - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return torch.from_numpy(np.ascontiguousarray(scaled.transpose(2, 0, 1)))


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
