"""The one image → array transform shared by catalog embedding, training evaluation and the ONNX query path.

Torch-free (numpy + Pillow), so the query path never loads torch.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from models.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TTA_NONE = "none"
TTA_FLIP = "flip"
TTA_MODES = (TTA_NONE, TTA_FLIP)  # test-time augmentation: "flip" averages an image with its horizontal mirror


@dataclass(frozen=True)
class PreprocessSpec:
    """How an RGB image becomes a (3, S, S) float32 array: resize shorter side, centre crop, normalise; and
    how a network's outputs become the image's vector (``tta``: "none", or "flip": the L2-normalised mean of
    the outputs on the image and on its horizontal mirror; see :meth:`views` and :meth:`merge`)."""

    image_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    tta: str = TTA_NONE

    def __post_init__(self) -> None:
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int) or self.image_size < 8:
            raise ConfigError(f"image_size: {self.image_size!r} is invalid; expected an integer >= 8")
        for name in ("mean", "std"):
            value = getattr(self, name)
            try:
                floats = tuple(float(v) for v in value)
            except (TypeError, ValueError):
                raise ConfigError(f"{name}: {value!r} is invalid; expected three numbers") from None
            if len(floats) != 3:
                raise ConfigError(f"{name}: {value!r} is invalid; expected three numbers (R, G, B)")
            if name == "std" and min(floats) <= 0:
                raise ConfigError(f"std: {value!r} is invalid; every value must be > 0")
            object.__setattr__(self, name, floats)
        if self.tta not in TTA_MODES:
            raise ConfigError(f"tta: {self.tta!r} is invalid; expected one of {', '.join(TTA_MODES)}")

    @property
    def decode_side(self) -> int:
        """Images are decoded no smaller than this on their shorter side (twice the model's input), and no
        larger than they need to be: see :func:`load_for_model`."""
        return 2 * self.image_size

    @property
    def n_views(self) -> int:
        """Network inputs per image: 2 with "flip", else 1."""
        return 2 if self.tta == TTA_FLIP else 1

    def views(self, batch: np.ndarray) -> np.ndarray:
        """(n, 3, S, S) float32 → (n * n_views, 3, S, S): the images, then (with "flip") their mirrors, so one
        forward pass embeds both."""
        if self.tta == TTA_NONE:
            return batch
        return np.concatenate([batch, batch[..., ::-1]])

    def merge(self, outputs: np.ndarray) -> np.ndarray:
        """(n * n_views, D) network outputs of :meth:`views` → (n, D) float32, L2-normalised per row."""
        outputs = np.asarray(outputs, np.float32)
        if self.tta == TTA_NONE:
            return outputs
        n = len(outputs) // self.n_views
        mean = outputs[:n] + outputs[n:]  # the 1/2 cancels in the normalisation
        norms = np.linalg.norm(mean, axis=1, keepdims=True)
        return (mean / np.maximum(norms, np.float32(1e-12))).astype(np.float32, copy=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessSpec:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError`. Specs saved before ``tta``
        existed read as "none"."""
        unknown = set(data) - {"image_size", "mean", "std", "tta"}
        if unknown:
            raise ConfigError(f"unknown preprocess key(s) {sorted(unknown)}; allowed: image_size, mean, std, tta")
        if "image_size" not in data:
            raise ConfigError("preprocess spec lacks 'image_size'")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def square_geometry(width: int, height: int, image_size: int) -> tuple[int, int, int, int]:
    """(new width, new height, left, top): a ``width`` x ``height`` image's shorter side resized to
    ``image_size``, then the centred ``image_size`` square's corner (every loader crops the same square)."""
    scale = image_size / min(width, height)
    new_w = max(image_size, round(width * scale))
    new_h = max(image_size, round(height * scale))
    return new_w, new_h, (new_w - image_size) // 2, (new_h - image_size) // 2


def resize_and_crop(img, image_size: int):
    """Resize the shorter side to ``image_size`` (bilinear) and centre-crop to a square PIL image."""
    from PIL import Image

    new_w, new_h, left, top = square_geometry(*img.size, image_size)
    if (new_w, new_h) != img.size:
        img = img.resize((new_w, new_h), Image.BILINEAR)
    return img.crop((left, top, left + image_size, top + image_size))


def normalise(rgb: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """(S, S, 3) uint8 → (3, S, S) float32 in the spec's normalised space."""
    arr = rgb.astype(np.float32) / np.float32(255.0)
    arr = (arr - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def normalise_table(spec: PreprocessSpec) -> np.ndarray:
    """(3, 256) float32: :func:`normalise` of every uint8 value, per channel, so looking a pixel up (on any
    device) gives :func:`normalise`'s value bit for bit."""
    values = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)  # (1, 256, 3)
    return normalise(values, spec)[:, 0, :]


def square_pixels(img, spec: PreprocessSpec) -> np.ndarray:
    """``PIL.Image`` → (S, S, 3) uint8 RGB: shorter side to S (bilinear, on uint8), centre crop S×S."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(resize_and_crop(img, spec.image_size), dtype=np.uint8)


def preprocess(img, spec: PreprocessSpec) -> np.ndarray:
    """RGB ``PIL.Image`` → (3, S, S) float32: shorter side to S, centre crop S×S, /255, mean/std."""
    return normalise(square_pixels(img, spec), spec)


def load_for_model(path: str | os.PathLike[str], spec: PreprocessSpec):
    """The one loader every model path uses (training, catalog embedding, CLI query, service): ``path``
    decoded as RGB at the smallest size whose shorter side is at least ``spec.decode_side`` (JPEG draft
    mode, a large enough embedded HEIC thumbnail, or an integer reduce; see :func:`models.images.open_rgb`).
    Catalogue and query therefore see identical pixels. Raises ImageError."""
    from models.images import open_rgb

    return open_rgb(path, min_side=spec.decode_side, thumbnails=True)


def decode_for_model(data: bytes, name: str, spec: PreprocessSpec):
    """:func:`load_for_model` for encoded bytes in memory (an upload); ``name`` labels errors. Raises ImageError."""
    from models.images import decode_rgb

    return decode_rgb(data, name, min_side=spec.decode_side, thumbnails=True)


def load_and_preprocess(path: str | os.PathLike[str], spec: PreprocessSpec) -> np.ndarray:
    """:func:`load_for_model` then :func:`preprocess`: (3, S, S) float32. Raises ImageError."""
    return preprocess(load_for_model(path, spec), spec)


def load_square_pixels(path: str | os.PathLike[str], spec: PreprocessSpec) -> np.ndarray:
    """:func:`load_for_model` then :func:`square_pixels`: (S, S, 3) uint8, not yet normalised. Raises ImageError."""
    return square_pixels(load_for_model(path, spec), spec)
