"""What the epoch loops share: their setup, batch shape, optimiser groups and the epoch-selection score."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.config import SIAMESE, TrainConfig
from models.preprocess import PreprocessSpec


@dataclass(frozen=True)
class FitSetup:
    """What both epoch loops need besides the model: config, device, seeded generator, preprocessing."""

    config: TrainConfig
    device: Any
    generator: Any
    spec: PreprocessSpec
    progress: bool
    num_workers: int
    state_path: Path | None = None  # per-epoch training state, so a killed run resumes (see train_loops)


def num_workers(config: TrainConfig, device) -> int:
    if config.num_workers is not None:
        return config.num_workers
    return min(8, os.cpu_count() or 1) if device.type == "cuda" else 0


def selection_score(entry: dict[str, float]) -> float:
    score = entry.get("map_at_r", float("nan")) + entry.get("precision_at_1", float("nan"))
    return -math.inf if math.isnan(score) else score


def batch_shape(config: TrainConfig, labels: np.ndarray) -> tuple[int, int]:
    """(P, K) capped for small catalogs: P at the number of classes present."""
    classes = len(np.unique(labels))
    return max(1, min(config.batch_classes, classes)), config.batch_per_class


def optimizer_groups(model, loss_fn, config: TrainConfig) -> list[dict[str, Any]]:
    """Head at ``lr``; a pretrained backbone at ``backbone_lr`` (a random one at ``lr``); loss proxies at 100×lr."""
    pretrained = config.weights is not None and config.network != SIAMESE
    groups = [{"params": list(model.head.parameters()), "lr": config.lr}]
    if not config.freeze_backbone:
        groups.append({"params": list(model.backbone.parameters()),
                       "lr": config.backbone_lr if pretrained else config.lr})
    loss_params = list(loss_fn.parameters())
    if loss_params:
        groups.append({"params": loss_params, "lr": config.lr * 100, "weight_decay": 0.0})
    return groups
