"""Train an embedding network with pytorch-metric-learning: P classes × K images per batch, best epoch kept."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

from models.artifacts import RESUME_FILE, TrainResult, write_model
from models.config import LABELS_NONE, TrainConfig
from models.data import Item, holdout_split, remap_labels
from models.device import resolve_device
from models.errors import ConfigError
from models.preprocess import PreprocessSpec
from models.train_setup import FitSetup, num_workers, selection_score

__all__ = ["RESUME_FILE", "TrainResult", "train_model"]


def train_model(config: TrainConfig, train_items: Sequence[Item], val_items: Sequence[Item] | None,
                out_dir: str | os.PathLike[str], *, progress: bool = True) -> TrainResult:
    """Train, keep the best validation epoch, write ``model.pt``, ``model.onnx`` and ``config.json`` in ``out_dir``.

    Items are ``(path, label)``. Without ``val_items`` a seeded stratified hold-out of ``train_items`` is used,
    unless ``config.holdout_fraction`` is 0: then nothing is validated and the last epoch is kept.
    With ``config.epochs`` 0 (:mod:`models.pretrained`) or ``config.labels`` "none" (:mod:`models.label_free`)
    the labels (which may be None) and ``val_items`` are not used: only the images are.
    """
    from models.device import keep_freed_memory
    from models.losses import build_loss, build_miner
    from models.networks import build_network
    from models.seeding import seed_everything

    started = time.perf_counter()
    keep_freed_memory()
    config = config.resolved()
    if config.untrained:
        from models.pretrained import fit_pretrained

        return fit_pretrained(config, [str(p) for p, _ in train_items], out_dir, progress=progress)
    if config.labels == LABELS_NONE:
        from models.label_free import train_label_free

        return train_label_free(config, [str(p) for p, _ in train_items], out_dir, progress=progress)
    train_items = [(str(p), int(label)) for p, label in train_items]
    if len(train_items) < 2:
        raise ConfigError(f"train_items: {len(train_items)} item(s) is too few; expected at least 2 images")
    val_items = [(str(p), int(label)) for p, label in (val_items or [])]
    if not val_items and config.holdout_fraction > 0:
        train_items, val_items = holdout_split(train_items, config.holdout_fraction, config.seed)
    generator = seed_everything(config.seed)
    device = resolve_device(config.device)
    spec = PreprocessSpec(config.image_size, tta=config.tta)
    labels, _ = remap_labels([label for _, label in train_items + val_items])
    train_labels, val_labels = labels[:len(train_items)], labels[len(train_items):]
    num_classes = int(labels.max()) + 1

    model = build_network(config).to(device)
    loss_fn = build_loss(config, num_classes).to(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / RESUME_FILE
    setup = FitSetup(config, device, generator, spec, progress, num_workers(config, device), state_path)
    if config.freeze_backbone:
        from models.train_loops import fit_head_on_cached_features as fit
    else:
        from models.train_loops import fit_end_to_end as fit
    history, best_state = fit(model, loss_fn, build_miner(config), setup,
                              train_items, train_labels, val_items, val_labels)
    model.load_state_dict(best_state)
    model = model.to("cpu").eval()
    best = max(history, key=selection_score) if history else {}
    if best and selection_score(best) == -math.inf:  # no usable validation: the last epoch was kept
        best = history[-1]
    metrics = {k: v for k, v in best.items() if k != "epoch"}

    extra = {"epochs_run": len(history), "best_epoch": best.get("epoch"), "num_classes": num_classes,
             "num_train_items": len(train_items), "num_val_items": len(val_items)}
    return write_model(out, model, config, spec, metrics, extra, history, started)
