"""Loading weight files without ever unpickling untrusted code.

``.safetensors`` is read with safetensors; anything else goes through
``torch.load(weights_only=True)``, which refuses pickles that would run code
(a checkpoint with a malicious ``__reduce__`` raises here instead of executing).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from embedsearch.errors import ModelError


def load_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``path`` safely; unwrap ``state_dict``/``model`` and ``module.``.

    Example:
        >>> load_weights_file("model.safetensors")   # doctest: +SKIP
        {'conv1.weight': tensor(...), ...}
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as e:
            raise ModelError(f"cannot read safetensors file {path}: {e}") from e
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        # weights_only refuses arbitrary objects: never fall back to a full unpickle.
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(
            f"refused to load {path}: not a plain tensor checkpoint ({first_line}); "
            "convert it to .safetensors or a state dict of tensors"
        ) from e
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(f"{path} does not hold a state dict of tensors")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


# The weight files open_clip's ``local-dir:`` schema may pick (it globs these suffixes).
_LOCAL_DIR_WEIGHTS = ("*.safetensors", "*.bin", "*.pth")


def check_local_dir(folder: str | Path) -> bool:
    """Check an ``openclip:local-dir:FOLDER`` before open_clip reads it; True when it has weights
    (without any, open_clip builds a randomly initialised model).

    open_clip raises bare ``FileNotFoundError``/``ValueError``/``UnpicklingError`` (a
    traceback) for a missing folder or config and for a pickle it will not load. Here each
    is a :class:`ModelError`, and every weight file it might pick is opened first through
    :func:`load_weights_file` (``weights_only``), so a pickle that would run code is refused
    by name, never unpickled.

    Example:
        >>> check_local_dir("/no/such/dir")
        Traceback (most recent call last):
        ...
        embedsearch.errors.ModelError: local-dir: /no/such/dir is not a directory
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ModelError(f"local-dir: {folder} is not a directory")
    config = folder / "open_clip_config.json"
    try:
        with open(config, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"local-dir: cannot read {config}: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("model_cfg"), dict):
        raise ModelError(f"local-dir: {config} has no 'model_cfg' object")
    found = False
    for pattern in _LOCAL_DIR_WEIGHTS:
        for path in sorted(folder.glob(pattern)):
            load_weights_file(path)  # raises ModelError for anything but plain tensors
            found = True
    return found
