"""A folder of photos to a searchable index in one call: ingest, a label-free model, embed, build.

Each step is the API call its own command makes, and each resumes after an interruption as that command does:
ingest skips what is catalogued, a model registered with the same settings is kept (a cut-short training
resumes from its saved state), embedding adds only missing vectors, and the index is rebuilt atomically.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexer.api.workspace import Workspace

DEFAULT_MODEL = "photos"
DEFAULT_INDEX = "photos"
DEFAULT_NETWORK = "mobilenet_v2"


@dataclass
class IndexFolderOutcome:
    """What :func:`index_folder` did: each step's own outcome and its wall time in ``seconds``."""

    ingest: Any  # IngestReport
    model: Any  # TrainOutcome, or None when a model trained with the same settings was kept
    model_name: str
    embed: Any  # EmbedReport
    build: Any  # BuildOutcome
    seconds: dict[str, float] = field(default_factory=dict)


def index_folder(workspace: Workspace, directory: str | Path, *, labels: str = "none", model: str = DEFAULT_MODEL,
                 index: str = DEFAULT_INDEX, network: str = DEFAULT_NETWORK, weights: str = "imagenet",
                 epochs: int | None = 0, image_size: int = 128, dim: int = 128, seed: int = 0,
                 progress: bool = True) -> IndexFolderOutcome:
    """Catalogue ``directory`` (``labels``: "none", "folders" or a CSV file, as :func:`ingest_directory`), make
    model ``model`` from the pretrained ``network`` without labels (``epochs`` 0: its PCA-whitened features;
    None or N >= 1: a head trained on the images alone, :mod:`models.label_free`), embed every image with its
    ONNX export and build index ``index`` with ``--index auto``'s choice.
    """
    from indexer.api.pipeline.build import build
    from indexer.api.pipeline.ingest import ingest_directory
    from indexer.api.pipeline.training import embed, train
    from models.config import LABELS_NONE, TrainConfig

    config = TrainConfig(name=model, network=network, weights=weights, epochs=epochs, image_size=image_size,
                         embedding_dim=dim, seed=seed, labels=LABELS_NONE)
    seconds: dict[str, float] = {}
    began = time.perf_counter()
    ingested = ingest_directory(workspace, directory, labels=labels, progress=progress)
    seconds["ingest"] = time.perf_counter() - began
    began = time.perf_counter()
    trained = None if _kept(workspace, config) else train(workspace, config, progress=progress)
    seconds["model"] = time.perf_counter() - began
    began = time.perf_counter()
    embedded = embed(workspace, model, engine="onnx", progress=progress)
    seconds["embed"] = time.perf_counter() - began
    began = time.perf_counter()
    built = build(workspace, "auto", model_name=model, name=index, seed=seed, progress=progress)
    seconds["build"] = time.perf_counter() - began
    return IndexFolderOutcome(ingested, trained, model, embedded, built, seconds)


def _kept(workspace: Workspace, config) -> bool:
    """Whether model ``config.name`` is registered, made with exactly these settings, and its files are there."""
    from models.recipes import same_training

    with workspace.catalog() as catalog:
        models = {row.name: row for row in catalog.models()}
    row = models.get(config.name)
    if row is None:
        return False
    # a small catalog caps the PCA's dims below the asked ones: compare everything else
    saved = {**(row.params.get("config") or {}), "embedding_dim": config.embedding_dim}
    return (same_training(saved, config) and Path(workspace.resolve(row.path)).is_file()
            and Path(workspace.resolve(row.params["onnx"])).is_file())
