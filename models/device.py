"""Choosing the torch device: "auto" means CUDA when there is one."""

from __future__ import annotations

from models.errors import ConfigError


def resolve_device(name: str):
    """"auto" → cuda when available, else cpu."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} is invalid; no CUDA device is available (use 'auto' or 'cpu')")
    return torch.device(name)
