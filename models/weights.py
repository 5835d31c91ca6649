"""Pretrained weights: torchvision's ImageNet registry (cache first) or a state dict / checkpoint file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from models.errors import WeightsError


def load_pretrained(network_name: str, weights: str) -> dict[str, Any]:
    """State dict for ``network_name``: ``"imagenet"`` → torchvision's registry, else a file path.

    A file may hold a bare torchvision state dict or one of our checkpoints (then its ``state_dict`` is
    returned with our key names, ``backbone.*`` / ``head.*``). Raises :class:`WeightsError`.
    """
    if weights == "imagenet":
        return _imagenet_state_dict(network_name)
    return load_state_dict_file(weights)


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a state dict (``torch.load(weights_only=True)``); accepts our checkpoint dicts too."""
    import torch

    from models.torch_io import torch_load

    data = torch_load(path, WeightsError, "weights file")
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise WeightsError(f"weights file {str(path)!r} does not hold a state dict of tensors")
    return data


def _imagenet_state_dict(network_name: str) -> dict[str, Any]:
    import torch
    from torchvision.models import get_model_weights

    try:
        enum = get_model_weights(network_name)
    except (ValueError, KeyError):
        raise WeightsError(f"torchvision has no pretrained weights registered for {network_name!r}") from None
    default = enum.DEFAULT
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    cached = cached_imagenet_file(network_name)
    if cached is not None:
        return load_state_dict_file(cached)
    try:
        return default.get_state_dict(progress=False, check_hash=True)
    except (OSError, ValueError) as exc:  # URLError is an OSError; offline DNS fails fast
        files = " or ".join(_file_name(w.url) for w in [default, *[w for w in enum if w is not default]])
        raise WeightsError(
            f"cannot download ImageNet weights for {network_name!r} ({exc.__class__.__name__}: {exc}); "
            f"put {files} in {checkpoints}/ ($TORCH_HOME/hub/checkpoints/) or pass --weights PATH"
        ) from None


def cached_imagenet_file(network_name: str) -> Path | None:
    """A registered ImageNet checkpoint of ``network_name`` already in the torch cache (DEFAULT first), or None."""
    import torch
    from torchvision.models import get_model_weights

    try:
        enum = get_model_weights(network_name)
    except (ValueError, KeyError):
        return None
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    for candidate in [enum.DEFAULT, *[w for w in enum if w is not enum.DEFAULT]]:
        cached = checkpoints / _file_name(candidate.url)
        if cached.is_file():
            return cached
    return None


def _file_name(url: str) -> str:
    return url.rsplit("/", 1)[-1]
