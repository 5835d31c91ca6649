"""A pretrained backbone as an embedding model, with no training (``epochs: 0``).

The model is the backbone's pooled features, PCA-whitened (:mod:`models.pca`) to ``embedding_dim`` with the PCA
fitted on a seeded sample of the given images (no labels), then L2-normalised: an :class:`EmbeddingNet`
whose head is fixed, saved and exported to ONNX like a trained model, so every path that embeds or queries
with a model works with it unchanged.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.config import LABELS_NONE, TrainConfig
from models.errors import ConfigError
from models.pca import MAX_FIT_SAMPLES, WhiteningSpec


def fit_sample(paths: Sequence[str], seed: int, limit: int = MAX_FIT_SAMPLES) -> list[str]:
    """Up to ``limit`` of ``paths``, a seeded sample when there are more, in their original order."""
    if len(paths) <= limit:
        return list(paths)
    chosen = np.sort(np.random.default_rng(seed).choice(len(paths), size=limit, replace=False))
    return [paths[i] for i in chosen]


def clean_features(backbone, paths: Sequence[str], spec, *, device, num_workers: int, generator, progress: bool,
                   desc: str = "features"):
    """The backbone's pooled features of each decodable image, preprocessed as the catalog embeds it:
    (n, F) float32 CPU tensor (unreadable images left out); onnxruntime runs the backbone on a CPU."""
    from models.data import ImageDataset
    from models.features import backbone_runner, compute_features

    dataset = ImageDataset([(path, 0) for path in paths], np.zeros(len(paths), np.int64), spec, augment=False)
    with backbone_runner(backbone, spec.image_size, device) as runner:
        features, _ = compute_features(backbone, dataset, device=device, num_workers=num_workers,
                                       generator=generator, progress=progress, desc=desc, runner=runner)
    return features


def fit_pretrained(config: TrainConfig, paths: Sequence[str], out_dir: str | os.PathLike[str], *,
                   progress: bool = True, whitening: WhiteningSpec | None = None):
    """Fit the PCA-whitening head of ``config``'s pretrained backbone on a sample of ``paths`` and write the
    model (``model.pt``, ``model.onnx``, ``config.json``) in ``out_dir``. Returns a
    :class:`models.artifacts.TrainResult` with no epochs; the config's ``embedding_dim`` is the fitted dim
    (``embedding_dim``, or fewer when the sample is too small to give that many axes)."""
    from models.artifacts import write_model
    from models.device import resolve_device
    from models.networks import build_network
    from models.pca import PcaWhitening
    from models.preprocess import PreprocessSpec
    from models.seeding import seed_everything
    from models.train_setup import num_workers

    started = time.perf_counter()
    config = dataclasses.replace(config, labels=LABELS_NONE).resolved()
    whitening = whitening or WhiteningSpec(dim=config.embedding_dim)
    generator = seed_everything(config.seed)
    device = resolve_device(config.device)
    spec = PreprocessSpec(config.image_size, tta=config.tta)
    model = build_network(config).to(device)
    sample = fit_sample(list(paths), config.seed)
    features = clean_features(model.backbone, sample, spec, device=device,
                              num_workers=num_workers(config, device), generator=generator, progress=progress,
                              desc="backbone features")
    if len(features) < 2:
        raise ConfigError(f"images: {len(features)} decodable image(s) is too few; fitting the PCA needs at least 2")
    model.head = PcaWhitening.fitted(features.numpy(), whitening)
    model = model.to("cpu").eval()
    config = dataclasses.replace(config, embedding_dim=model.head.dim)
    extra = {"epochs_run": 0, "num_train_items": len(features), "num_val_items": 0,
             "pca": {**whitening.to_dict(), "dim": model.head.dim, "fit_images": len(features),
                     "images_given": len(paths)}}
    return write_model(Path(out_dir), model, config, spec, {}, extra, [], started)
