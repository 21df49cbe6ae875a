"""The :class:`Encoder` interface shared by every model family.

A backend implements ``_forward_images`` (and ``_forward_texts`` when it has a
text tower); the base class handles devices, inference mode, autocast,
channels_last, batching and L2 normalisation, so every encoder returns
L2-normalised float32 numpy arrays.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from embedsearch.errors import ModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class ImagePreprocess:
    """How images become model input: shorter side to ``image_size``, centre crop, normalise.

    Picklable, so DataLoader workers can run it. Example:
        >>> ImagePreprocess(64).image_size
        64
    """

    image_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

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
        array = (array - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cpu``/``cuda`` as asked."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"--device {device} was asked for but CUDA is not available here")
    try:
        return torch.device(device)
    except RuntimeError as e:
        raise ModelError(f"unknown device {device!r}: use auto, cpu or cuda") from e


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
            so a mirrored copy gets the same vector; twice the model work (see :meth:`use_flip_average`).

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
    config: dict[str, Any]
    model: torch.nn.Module
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "fp32"
    flip_average: bool = False
    _fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        """Hash of config + weights (+ flip averaging: it changes every vector), computed once."""
        if self._fingerprint is None:
            config = {**self.config, "flip_average": True} if self.flip_average else self.config
            self._fingerprint = fingerprint_of(config, self.model.state_dict())
        return self._fingerprint

    def use_flip_average(self) -> Encoder:
        """Make image vectors mirror-invariant: the normalised mean of the image's and its mirror's vector.

        Copies of photos are often mirrored, and even SimCLR (trained with random flips) places an
        image and its mirror apart; on the strong-copy benchmark averaging the two raised copy
        detection F1 (``benchmarks/RESULTS.md``). Recorded in ``options``, so the embedding dir's
        queries and dedup calibration embed the same way. Text vectors are unchanged.

        Example:
            >>> enc = load_encoder("simclr:resnet18", image_size=32).use_flip_average()   # doctest: +SKIP
            >>> enc.options["flip_average"]                                              # doctest: +SKIP
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
        """Move to ``device`` (auto/cpu/cuda) and use ``precision`` (fp32/bf16/fp16) autocast."""
        if precision not in PRECISIONS:
            raise ModelError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
        _ = self.fingerprint  # hash the weights before any conversion (e.g. to half precision)
        self.device = resolve_device(device)
        if precision == "fp16" and self.device.type != "cuda":
            raise ModelError("--precision fp16 needs --device cuda; use fp32 or bf16 on the CPU")
        self.precision = precision
        self.model.to(self.device)
        if self.device.type == "cuda":
            self.model.to(memory_format=torch.channels_last)
        return self

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=PRECISIONS[self.precision])

    @torch.inference_mode()
    def embed_images(self, pixels: torch.Tensor) -> np.ndarray:
        """Preprocessed image batch (N, 3, H, W) -> (N, dim) L2-normalised float32."""
        pixels = pixels.to(self.device, non_blocking=True)
        if self.device.type == "cuda":
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        with self._autocast():
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
        with self._autocast():
            features = self._forward_texts(list(texts))
        return _normalise(features)

    def _forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _forward_texts(self, texts: list[str]) -> torch.Tensor:
        raise NotImplementedError


def _normalise(features: torch.Tensor) -> np.ndarray:
    features = torch.nn.functional.normalize(features.float(), dim=-1)
    return features.cpu().numpy().astype(np.float32, copy=False)
