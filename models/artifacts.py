"""A finished model's files (``model.pt``, ``model.onnx``, ``config.json``) and what training returns."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from indexer.core.files import write_json
from models.config import TrainConfig
from models.preprocess import PreprocessSpec

RESUME_FILE = "train_state.pt"  # per-epoch state of an unfinished run (models.train_loops), beside the model


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


def write_model(out: Path, model, config: TrainConfig, spec: PreprocessSpec, metrics: dict[str, float],
                extra: dict, history: list[dict[str, float]], started: float) -> TrainResult:
    """Write ``model.pt``, ``model.onnx`` and the ``config.json`` sidecar of a finished model into ``out``, drop
    its resumable state, and describe it (``extra`` holds ``num_train_items`` and ``num_val_items``)."""
    import torch

    from models.checkpoint import save_checkpoint
    from models.onnx_export import export_onnx

    checkpoint = save_checkpoint(out / "model.pt", model, config, spec, metrics, extra)
    onnx_path = export_onnx(model, spec, out / "model.onnx")
    seconds = time.perf_counter() - started
    sidecar = {"config": config.to_dict(), "preprocess": spec.to_dict(), "metrics": metrics, "history": history,
               "seconds": round(seconds, 2), "torch_version": str(torch.__version__), **extra}
    write_json(out / "config.json", sidecar, default=str)
    (out / RESUME_FILE).unlink(missing_ok=True)  # finished: nothing left to resume
    return TrainResult(checkpoint, onnx_path, metrics, config, spec, len(history), seconds, history,
                       extra.get("num_train_items", 0), extra.get("num_val_items", 0))
