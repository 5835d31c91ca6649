"""Frozen-backbone feature caching: run the backbone once per view, then train only the head on the cache."""

from __future__ import annotations

import numpy as np

from models.data import ImageDataset, collate_skipping_failures
from models.device import channels_last


def compute_features(backbone, dataset: ImageDataset, *, device, batch_size: int = 64, num_workers: int = 0,
                     generator=None, progress: bool = False, desc: str = "features"):
    """Backbone features of every decodable item: ((n, F) float32 CPU tensor, (n,) int64 labels).

    Unreadable images are left out. Augmented views draw from torch's RNG (seeded workers via ``generator``).
    """
    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    cuda = device.type == "cuda"
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=collate_skipping_failures, pin_memory=cuda, generator=generator)
    features, labels = [], []
    channels_last(backbone).eval()
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
        for batch in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
            if batch is None:
                continue
            images, batch_labels, _ = batch
            images = channels_last(images.to(device, non_blocking=True))
            features.append(backbone(images).float().cpu())
            labels.append(batch_labels)
    if not features:
        return torch.zeros((0, 0)), torch.zeros((0,), dtype=torch.int64)
    return torch.cat(features), torch.cat(labels).long()


def cache_training_features(backbone, items, labels: np.ndarray, spec, *, views: int, device, batch_size: int,
                            num_workers: int, generator, progress: bool):
    """Clean view plus ``views`` augmented views of every training item, concatenated: ((n*(1+views), F), labels)."""
    import torch

    clean = compute_features(backbone, ImageDataset(items, labels, spec, augment=False), device=device,
                             batch_size=batch_size, num_workers=num_workers, generator=generator,
                             progress=progress, desc="train features")
    parts = [clean]
    augmented = ImageDataset(items, labels, spec, augment=True)
    for view in range(views):
        parts.append(compute_features(backbone, augmented, device=device, batch_size=batch_size,
                                      num_workers=num_workers, generator=generator, progress=progress,
                                      desc=f"augmented view {view + 1}/{views}"))
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
