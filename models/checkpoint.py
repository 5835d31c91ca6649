"""Saving and loading trained embedding models (``model.pt``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from indexer.core.files import atomic_path
from models.config import TrainConfig
from models.errors import CheckpointError, ConfigError
from models.preprocess import TTA_MODES, PreprocessSpec
from models.torch_io import torch_load

CHECKPOINT_FORMAT = 1


def save_checkpoint(
    path: str | os.PathLike[str],
    model,
    config: TrainConfig,
    spec: PreprocessSpec,
    metrics: dict[str, float] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the state dict with the resolved config, preprocess spec and metrics; atomic and durable."""
    import torch

    config = config.resolved()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": config.to_dict(),
        "preprocess": spec.to_dict(),
        "metrics": dict(metrics or {}),
        "network": config.network,
        "embedding_dim": config.embedding_dim,
        "torch_version": str(torch.__version__),
        **(extra or {}),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw checkpoint dict (``torch.load(weights_only=True)``); CheckpointError when missing/corrupt."""
    data = torch_load(path, CheckpointError, "checkpoint")
    required = ("state_dict", "config", "preprocess")
    if not isinstance(data, dict) or any(k not in data for k in required):
        raise CheckpointError(f"checkpoint {str(path)!r} is not a models checkpoint (needs keys {required})")
    return data


def write_variant(source: str | os.PathLike[str], target: str | os.PathLike[str], *, name: str, tta: str) -> Path:
    """Copy checkpoint ``source`` to ``target`` as model ``name`` whose preprocessing has test-time
    augmentation ``tta``: the same weights, a new spec (ConfigError for a bad ``tta``); atomic."""
    import dataclasses

    import torch

    if tta not in TTA_MODES:
        raise ConfigError(f"tta: {tta!r} is invalid; expected one of {', '.join(TTA_MODES)}")
    data = read_checkpoint(source)
    try:
        spec = dataclasses.replace(PreprocessSpec.from_dict(data["preprocess"]), tta=tta)
    except ConfigError as exc:
        raise CheckpointError(f"checkpoint {os.fspath(source)!r} has an invalid preprocess spec: {exc}") from None
    data = {**data, "preprocess": spec.to_dict(), "config": {**data["config"], "name": name, "tta": tta}}
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        torch.save(data, tmp)
    return target


def load_model(checkpoint_path: str | os.PathLike[str], device: str = "cpu"):
    """(model in eval mode on ``device``, PreprocessSpec, meta dict) from a ``model.pt``."""
    from models.networks import build_network

    data = read_checkpoint(checkpoint_path)
    try:
        config = TrainConfig.from_dict(data["config"])
        spec = PreprocessSpec.from_dict(data["preprocess"])
    except ConfigError as exc:
        raise CheckpointError(f"checkpoint {os.fspath(checkpoint_path)!r} has an invalid config: {exc}") from None
    model = build_network(config, load_weights=False)
    try:
        model.load_state_dict(data["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {os.fspath(checkpoint_path)!r} does not fit its network "
                              f"{config.network!r}: {str(exc).splitlines()[0]}") from None
    meta = {k: v for k, v in data.items() if k != "state_dict"}
    return model.to(device).eval(), spec, meta


__all__ = ["save_checkpoint", "load_model", "read_checkpoint", "write_variant"]
