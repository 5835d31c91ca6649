"""Fixtures made in code: a few tiny PNGs of coloured shapes per class, and one trained tiny model."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

COLOURS = [(220, 40, 40), (40, 180, 60), (50, 80, 220), (230, 200, 40), (160, 60, 200)]


def make_images(root, classes: int = 4, per_class: int = 6, size: int = 32, seed: int = 0) -> list[tuple[str, int]]:
    """``classes`` × ``per_class`` PNGs: class c is a shape of colour c, jittered in place and size."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    items = []
    for label in range(classes):
        for i in range(per_class):
            img = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 60, 3)))
            draw = ImageDraw.Draw(img)
            x, y = rng.integers(2, size // 3, 2)
            extent = int(rng.integers(size // 2, size - 4))
            box = [int(x), int(y), int(min(size - 1, x + extent)), int(min(size - 1, y + extent))]
            colour = COLOURS[label % len(COLOURS)]
            (draw.ellipse if label % 2 else draw.rectangle)(box, fill=colour)
            path = root / f"c{label}_{i}.png"
            img.save(path)
            items.append((str(path), label))
    return items


@pytest.fixture
def tiny_items(tmp_path):
    return make_images(tmp_path / "images")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A Siamese net trained for one epoch at 32 px: (TrainResult, items)."""
    from models.config import TrainConfig
    from models.train import train_model

    root = tmp_path_factory.mktemp("trained")
    items = make_images(root / "images")
    config = TrainConfig(name="tiny", network="siamese", image_size=32, epochs=1, batch_classes=4,
                         batch_per_class=2, seed=1)
    return train_model(config, items, None, root / "model", progress=False), items
