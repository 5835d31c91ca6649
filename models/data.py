"""Training data: image datasets (clean and augmented views), label remapping and the validation hold-out."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from models.config import AUGMENT_JITTER, AUGMENT_RAND, AUGMENT_TRIVIAL, AUGMENTS
from models.errors import ConfigError, ImageError
from models.preprocess import PreprocessSpec, load_and_preprocess, load_for_model, normalise

Item = tuple[str, int]  # (path, label)


def remap_labels(labels: Sequence[int]) -> tuple[np.ndarray, dict[int, int]]:
    """Arbitrary int labels → (n,) int64 in 0..C-1 and the mapping used."""
    mapping = {label: i for i, label in enumerate(sorted(set(int(x) for x in labels)))}
    return np.asarray([mapping[int(x)] for x in labels], dtype=np.int64), mapping


def usable_labels(labels: Sequence[int]) -> bool:
    """Whether these labels can train with a metric-learning loss: at least two labels of two images each."""
    counts: dict[int, int] = defaultdict(int)
    for label in labels:
        counts[int(label)] += 1
    return sum(count >= 2 for count in counts.values()) >= 2


def holdout_split(items: Sequence[Item], fraction: float, seed: int) -> tuple[list[Item], list[Item]]:
    """Seeded stratified hold-out: from each class with >= 3 images, hold out round(fraction * n) (at least one,
    leaving at least two for training). Returns (train, val); val is empty for catalogs too small to split."""
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = defaultdict(list)
    for index, (_, label) in enumerate(items):
        by_class[int(label)].append(index)
    held: set[int] = set()
    for label in sorted(by_class):
        indices = by_class[label]
        count = min(len(indices) - 2, max(1, round(fraction * len(indices)))) if len(indices) >= 3 else 0
        if count > 0:
            held.update(rng.choice(indices, size=count, replace=False).tolist())
    train = [item for i, item in enumerate(items) if i not in held]
    val = [item for i, item in enumerate(items) if i in held]
    return train, val


def augmentation(image_size: int, policy: str = AUGMENT_JITTER):
    """PIL → PIL random view (torch's global RNG): random-resized crop and horizontal flip, then per ``policy``
    (one of :data:`models.config.AUGMENTS`) colour jitter, TrivialAugmentWide or RandAugment (2 ops, magnitude 9)."""
    from torchvision import transforms

    if policy not in AUGMENTS:
        raise ConfigError(f"augment: {policy!r} is invalid; expected one of {', '.join(AUGMENTS)}")
    last = {
        AUGMENT_JITTER: lambda: transforms.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03),
        AUGMENT_TRIVIAL: transforms.TrivialAugmentWide,
        AUGMENT_RAND: transforms.RandAugment,
    }[policy]()
    return transforms.Compose([
        transforms.RandomResizedCrop(image_size, scale=(0.5, 1.0), antialias=True),
        transforms.RandomHorizontalFlip(),
        last,
    ])


class ImageDataset:
    """``(path, label)`` items → ``(image (3, S, S) float32 tensor, label, index)``; unreadable files give None.

    ``augment=False`` is exactly :func:`models.preprocess.preprocess`; ``augment=True`` draws a random view
    and applies the same normalisation. ``mirror=True`` gives each image's horizontal mirror (the second view
    of a spec's test-time flip). ``policy`` picks the random views (:func:`augmentation`).
    """

    def __init__(self, items: Sequence[Item], labels: np.ndarray, spec: PreprocessSpec, augment: bool, *,
                 mirror: bool = False, policy: str = AUGMENT_JITTER) -> None:
        self.items = list(items)
        self.labels = labels
        self.spec = spec
        self.transform = augmentation(spec.image_size, policy) if augment else None
        self.mirror = mirror

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        import torch

        path = self.items[index][0]
        try:
            if self.transform is None:
                array = load_and_preprocess(path, self.spec)
            else:
                array = normalise(np.asarray(self.transform(load_for_model(path, self.spec)), dtype=np.uint8), self.spec)
        except ImageError:
            return None
        if self.mirror:
            array = np.ascontiguousarray(array[..., ::-1])
        return torch.from_numpy(array), int(self.labels[index]), index


def collate_skipping_failures(batch):
    """Default collate over the items that decoded; ``None`` when none did."""
    from torch.utils.data import default_collate

    batch = [sample for sample in batch if sample is not None]
    return default_collate(batch) if batch else None
