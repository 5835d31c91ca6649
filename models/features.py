"""Frozen-backbone feature caching: run the backbone once per view, then train only the head on the cache."""

from __future__ import annotations

import contextlib
import os
import tempfile

import numpy as np

from models.config import AUGMENT_JITTER
from models.data import ImageDataset, collate_skipping_failures
from models.device import channels_last


def compute_features(backbone, dataset: ImageDataset, *, device, batch_size: int = 64, num_workers: int = 0,
                     generator=None, progress: bool = False, desc: str = "features", runner=None):
    """Backbone features of every decodable item: ((n, F) float32 CPU tensor, (n,) int64 labels).

    Unreadable images are left out. Augmented views draw from torch's RNG (seeded workers via ``generator``).
    ``runner`` (from :func:`backbone_runner`) runs the backbone instead of torch itself.
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
            if runner is not None:
                features.append(runner(images))
            else:
                images = channels_last(images.to(device, non_blocking=True))
                features.append(backbone(images).float().cpu())
            labels.append(batch_labels)
    if not features:
        return torch.zeros((0, 0)), torch.zeros((0,), dtype=torch.int64)
    return torch.cat(features), torch.cat(labels).long()


@contextlib.contextmanager
def backbone_runner(backbone, image_size: int, device, runtime: str = "auto"):
    """A callable ``(B, 3, S, S) tensor -> (B, F) float32 CPU tensor`` running ``backbone``, or None (torch).

    ``runtime`` "onnx" (or "auto" on a CPU) exports the backbone once to a temporary ONNX file and runs it with
    onnxruntime, the runtime queries use: on a CPU several times torch's rate for the same features (equal to
    about 1e-5). "torch" (or "auto" on a GPU) gives None: :func:`compute_features` runs torch.
    """
    if runtime == "torch" or (runtime == "auto" and device.type != "cpu"):
        yield None
        return
    import onnxruntime as ort
    import torch

    with tempfile.TemporaryDirectory(prefix="backbone-") as folder:
        path = os.path.join(folder, "backbone.onnx")
        module = backbone.eval().to("cpu", memory_format=torch.contiguous_format)
        sample = torch.zeros(2, 3, image_size, image_size)
        with torch.no_grad():
            torch.onnx.export(module, (sample,), path, input_names=["images"], output_names=["features"],
                              dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}}, opset_version=17,
                              dynamo=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

        def run(images):
            batch = np.ascontiguousarray(images.numpy(), np.float32)
            return torch.from_numpy(session.run(None, {"images": batch})[0])

        yield run


def cache_training_features(backbone, items, labels: np.ndarray, spec, *, views: int, device, batch_size: int,
                            num_workers: int, generator, progress: bool, runner=None, policy: str = AUGMENT_JITTER):
    """Clean view plus ``views`` augmented views of every training item, concatenated: ((n*(1+views), F), labels).
    ``runner``: see :func:`compute_features`; ``policy``: the augmentation (one of ``AUGMENTS``)."""
    import torch

    clean = compute_features(backbone, ImageDataset(items, labels, spec, augment=False), device=device,
                             batch_size=batch_size, num_workers=num_workers, generator=generator,
                             progress=progress, desc="train features", runner=runner)
    parts = [clean]
    augmented = ImageDataset(items, labels, spec, augment=True, policy=policy)
    for view in range(views):
        parts.append(compute_features(backbone, augmented, device=device, batch_size=batch_size,
                                      num_workers=num_workers, generator=generator, progress=progress,
                                      desc=f"augmented view {view + 1}/{views}", runner=runner))
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
