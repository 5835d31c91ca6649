"""Train an embedding network with pytorch-metric-learning: P classes × K images per batch, best epoch kept."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.config import SIAMESE, TrainConfig
from models.data import Item, holdout_split, remap_labels
from models.errors import ConfigError
from models.preprocess import PreprocessSpec

RESUME_FILE = "train_state.pt"


@dataclass
class TrainResult:
    """What :func:`train_model` produced; ``metrics`` are the selected epoch's validation metrics."""

    checkpoint_path: Path
    onnx_path: Path
    metrics: dict[str, float]
    config: TrainConfig
    preprocess: PreprocessSpec
    epochs_run: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    num_train_items: int = 0  # after any hold-out was taken
    num_val_items: int = 0


def resolve_device(name: str):
    """"auto" → cuda when available, else cpu."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} is invalid; no CUDA device is available (use 'auto' or 'cpu')")
    return torch.device(name)


def train_model(config: TrainConfig, train_items: Sequence[Item], val_items: Sequence[Item] | None,
                out_dir: str | os.PathLike[str], *, progress: bool = True) -> TrainResult:
    """Train, keep the best validation epoch, write ``model.pt``, ``model.onnx`` and ``config.json`` in ``out_dir``.

    Items are ``(path, label)``. Without ``val_items`` a seeded stratified hold-out of ``train_items`` is used.
    """
    import torch

    from models.checkpoint import save_checkpoint
    from models.losses import build_loss, build_miner
    from models.networks import build_network
    from models.onnx_export import export_onnx
    from models.seeding import seed_everything

    started = time.perf_counter()
    config = config.resolved()
    train_items = [(str(p), int(label)) for p, label in train_items]
    if len(train_items) < 2:
        raise ConfigError(f"train_items: {len(train_items)} item(s) is too few; expected at least 2 images")
    val_items = [(str(p), int(label)) for p, label in (val_items or [])]
    if not val_items:
        train_items, val_items = holdout_split(train_items, config.holdout_fraction, config.seed)
    generator = seed_everything(config.seed)
    device = resolve_device(config.device)
    spec = PreprocessSpec(config.image_size)
    labels, _ = remap_labels([label for _, label in train_items + val_items])
    train_labels, val_labels = labels[:len(train_items)], labels[len(train_items):]
    num_classes = int(labels.max()) + 1

    model = build_network(config).to(device)
    loss_fn = build_loss(config, num_classes).to(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / RESUME_FILE
    setup = _Setup(config, device, generator, spec, progress, _num_workers(config, device), state_path)
    if config.freeze_backbone:
        from models.train_loops import fit_head_on_cached_features as fit
    else:
        from models.train_loops import fit_end_to_end as fit
    history, best_state = fit(model, loss_fn, build_miner(config), setup,
                              train_items, train_labels, val_items, val_labels)
    model.load_state_dict(best_state)
    model = model.to("cpu").eval()
    best = max(history, key=_selection_score) if history else {}
    if best and _selection_score(best) == -math.inf:  # no usable validation: the last epoch was kept
        best = history[-1]
    metrics = {k: v for k, v in best.items() if k != "epoch"}

    extra = {"epochs_run": len(history), "best_epoch": best.get("epoch"), "num_classes": num_classes,
             "num_train_items": len(train_items), "num_val_items": len(val_items)}
    checkpoint = save_checkpoint(out / "model.pt", model, config, spec, metrics, extra)
    onnx_path = export_onnx(model, spec, out / "model.onnx")
    seconds = time.perf_counter() - started
    sidecar = {"config": config.to_dict(), "preprocess": spec.to_dict(), "metrics": metrics, "history": history,
               "seconds": round(seconds, 2), "torch_version": str(torch.__version__), **extra}
    tmp = out / "config.json.tmp"
    tmp.write_text(json.dumps(sidecar, indent=2, default=str))
    os.replace(tmp, out / "config.json")
    state_path.unlink(missing_ok=True)  # finished: nothing left to resume
    return TrainResult(checkpoint, onnx_path, metrics, config, spec, len(history), seconds, history,
                       len(train_items), len(val_items))


@dataclass(frozen=True)
class _Setup:
    config: TrainConfig
    device: Any
    generator: Any
    spec: PreprocessSpec
    progress: bool
    num_workers: int
    state_path: Path | None = None  # per-epoch training state, so a killed run resumes (see train_loops)


def _num_workers(config: TrainConfig, device) -> int:
    if config.num_workers is not None:
        return config.num_workers
    return min(8, os.cpu_count() or 1) if device.type == "cuda" else 0


def _selection_score(entry: dict[str, float]) -> float:
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
