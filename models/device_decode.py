"""JPEG decoding on the model's device for catalog embedding (``indexer embed --decode device``).

The CPU loader (:func:`models.preprocess.load_square_pixels`) decodes in the DataLoader's workers. With
``decode="device"`` a worker only reads a JPEG's header (format, mode, size: no pixels) and sends the file's
bytes and EXIF orientation; the main process decodes a whole batch with ``torchvision.io.decode_jpeg`` on the
model's device (nvJPEG on CUDA), turns each image upright itself (torchvision ignores the orientation on CUDA),
then resizes each image's shorter side to the model's input exactly as Pillow's bilinear resize does
(:func:`square_on_device`) and centre-crops, as :func:`models.preprocess.resize_and_crop` does. Every other
file (PNG, HEIC, CMYK or 16-bit JPEGs, an unreadable header, more than :data:`MAX_DEVICE_PIXELS`) takes the CPU
loader in the worker, so nothing is refused that the CPU path accepts, and its errors are the CPU path's. A JPEG
the device cannot decode is decoded from its bytes on the CPU in the main process (the same loader), or reported
as failed with that loader's reason.

Where the CPU loader decodes a JPEG whole (its shorter side at most twice the model's input), the pixels are
the CPU loader's, given the same decoded pixels (torchvision's CPU decoder gives Pillow's; nvJPEG's are for the
device run to show). A larger JPEG differs: the CPU decodes it at a reduced size (DCT scaling) before resizing,
the device decodes it whole; its vectors agree to a cosine of at least 0.999 on the tests' images
(tests/models/test_device_decode.py); ``benchmarks/gpu_check.py`` measures it on the device.
"""

from __future__ import annotations

import functools
import io
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.errors import ConfigError, ImageError
from models.preprocess import (
    PreprocessSpec,
    decode_for_model,
    load_square_pixels,
    square_geometry,
    square_pixels,
)

DECODE_MODES = ("cpu", "device")
MAX_DEVICE_PIXELS = 50_000_000  # larger JPEGs decode on the CPU at a reduced size (DCT scaling) instead
_DEVICE_MODES = frozenset({"RGB", "L"})  # JPEG colour modes torchvision decodes to RGB (not CMYK, not 16-bit)
_ORIENTATION_TAG = 0x0112


@dataclass(frozen=True)
class Encoded:
    """A JPEG file's bytes, sent by a worker to be decoded on the device, and its EXIF orientation (1-8; 1:
    upright). torchvision applies the orientation on the CPU only, so the decoder turns the image itself."""

    data: np.ndarray  # (n,) uint8
    orientation: int = 1


def worker_load(path: str, spec: PreprocessSpec) -> Encoded | np.ndarray:
    """What a worker sends for ``path`` with device decoding: the file's bytes when its header says a JPEG the
    device decodes, else the CPU loader's (S, S, 3) uint8 pixels. Raises ImageError (the CPU loader's)."""
    from PIL import Image

    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:  # not readable: the CPU loader says why, in its words
        return load_square_pixels(path, spec)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:  # the header only: no pixels decoded here
                ok = (img.format == "JPEG" and img.mode in _DEVICE_MODES
                      and img.size[0] * img.size[1] <= MAX_DEVICE_PIXELS)
                orientation = int(img.getexif().get(_ORIENTATION_TAG, 1)) if ok else 1
        ok = ok and orientation in range(1, 9)
    except Exception:  # noqa: BLE001 - any trouble: the CPU loader decides, with its own error message
        ok = False
    if ok:
        return Encoded(np.frombuffer(data, np.uint8), orientation)
    return _cpu_pixels(data, path, spec)  # the bytes already read, not the file again


def _cpu_pixels(data: bytes, path: str, spec: PreprocessSpec) -> np.ndarray:
    """The CPU loader's (S, S, 3) uint8 pixels of a file's bytes. Raises ImageError (its reason)."""
    return square_pixels(decode_for_model(data, path, spec), spec)


@dataclass
class DeviceBatch:
    """A collated batch with device decoding: the encoded JPEGs (with their ids and paths) and the pixels the
    workers decoded (with their ids)."""

    encoded: list[np.ndarray] = field(default_factory=list)
    orientations: list[int] = field(default_factory=list)
    encoded_ids: list[int] = field(default_factory=list)
    encoded_paths: list[str] = field(default_factory=list)
    pixels: list[np.ndarray] = field(default_factory=list)  # each (S, S, 3) uint8
    pixel_ids: list[int] = field(default_factory=list)

    def add(self, loaded: Encoded | np.ndarray, item_id: int, path: str) -> None:
        """One item as :func:`worker_load` sent it: a JPEG's bytes, or the CPU loader's pixels."""
        if isinstance(loaded, Encoded):
            self.encoded.append(loaded.data)
            self.orientations.append(loaded.orientation)
            self.encoded_ids.append(int(item_id))
            self.encoded_paths.append(str(path))
        else:
            self.pixels.append(loaded)
            self.pixel_ids.append(int(item_id))

    def __len__(self) -> int:
        return len(self.encoded) + len(self.pixels)


class DeviceDecoder:
    """A :class:`DeviceBatch` → ((n, S, S, 3) uint8 tensor on ``device``, (n,) int64 ids, failed
    ``(id, path, reason)``): the JPEGs decoded on the device, then the workers' pixels after them."""

    def __init__(self, spec: PreprocessSpec, device: Any) -> None:
        import torch

        self.spec, self.device = spec, torch.device(device)

    def __call__(self, batch: DeviceBatch):
        import torch

        images, ids, failed = [], [], []
        decoded = self._decode_all([torch.from_numpy(data.copy()) for data in batch.encoded])
        for image, data, orientation, item_id, path in zip(decoded, batch.encoded, batch.orientations,
                                                           batch.encoded_ids, batch.encoded_paths):
            if image is None:  # the device could not: the CPU loader on the bytes, or its error
                try:
                    pixels = _cpu_pixels(data.tobytes(), path, self.spec)
                except ImageError as exc:
                    failed.append((int(item_id), path, str(exc)))
                    continue
                image = torch.from_numpy(pixels).to(self.device)
            else:
                image = square_on_device(upright(image, orientation), self.spec.image_size)
            images.append(image)
            ids.append(int(item_id))
        if batch.pixels:
            images.extend(torch.from_numpy(np.stack(batch.pixels)).to(self.device, non_blocking=True).unbind(0))
            ids.extend(int(i) for i in batch.pixel_ids)
        stacked = torch.stack(images) if images else None
        return stacked, np.asarray(ids, np.int64), failed

    def _decode_all(self, tensors: list) -> list:
        """Each tensor of bytes decoded on the device to a (3, H, W) uint8 RGB tensor as stored (EXIF
        orientation not applied: torchvision ignores it on CUDA), or None where the device failed (a batch that
        fails is retried one image at a time)."""
        from torchvision.io import ImageReadMode, decode_jpeg

        if not tensors:
            return []
        try:
            return list(decode_jpeg(tensors, mode=ImageReadMode.RGB, device=self.device, apply_exif_orientation=False))
        except RuntimeError:
            out = []
            for tensor in tensors:
                try:
                    out.append(decode_jpeg(tensor, mode=ImageReadMode.RGB, device=self.device,
                                           apply_exif_orientation=False))
                except RuntimeError:
                    out.append(None)
            return out


def upright(image, orientation: int):
    """(3, H, W) tensor turned as EXIF ``orientation`` (1-8) says, as Pillow's ``ImageOps.exif_transpose``
    turns it: 2 mirror, 3 half turn, 4 flip, 5 transpose, 6 quarter turn clockwise, 7 transverse, 8 quarter
    turn counter-clockwise."""
    import torch

    if orientation == 2:
        return image.flip(2)
    if orientation == 3:
        return image.flip(1).flip(2)
    if orientation == 4:
        return image.flip(1)
    if orientation == 5:
        return image.transpose(1, 2)
    if orientation == 6:
        return torch.rot90(image, -1, (1, 2))
    if orientation == 7:
        return image.transpose(1, 2).flip(1).flip(2)
    if orientation == 8:
        return torch.rot90(image, 1, (1, 2))
    return image


def square_on_device(image, image_size: int):
    """(3, H, W) uint8 tensor → (S, S, 3) uint8 on its device: shorter side to S, centre crop, the sizes of
    :func:`models.preprocess.square_geometry`, as the CPU loader's. The resize is Pillow's bilinear, reproduced: its
    fixed-point weights (:func:`pillow_weights`), the horizontal pass, rounding to uint8, then the vertical pass,
    in float64, where every sum is exact; so the pixels equal Pillow's (tested), and a fine-tuned network sees
    no rounding noise (torch's own antialiased interpolation differed by one grey level on a quarter of the
    pixels, and moved the vectors of the Flowers recipe's model to cosine 0.9989)."""
    import torch

    height, width = int(image.shape[1]), int(image.shape[2])
    new_w, new_h, left, top = square_geometry(width, height, image_size)
    if (new_w, new_h) != (width, height):
        x = image.to(torch.float64)
        if new_w != width:
            x = _fixed_point(x @ _weights(width, new_w, image.device).T)
        if new_h != height:
            x = _fixed_point(_weights(height, new_h, image.device) @ x)
        image = x.to(torch.uint8)
    return image[:, top:top + image_size, left:left + image_size].permute(1, 2, 0)


PRECISION_BITS = 22  # Pillow's fixed-point weights for 8-bit images: 32 - 8 - 2 bits


def _fixed_point(sums):
    """Pillow's rounding of a pass's sums of pixel x fixed-point weight: add a half, shift, clip to 0..255."""
    import torch

    return torch.floor((sums + float(1 << (PRECISION_BITS - 1))) / float(1 << PRECISION_BITS)).clamp_(0, 255)


def pillow_weights(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) float64 integer weights of Pillow's bilinear resize of one axis (its
    ``precompute_coeffs`` and ``normalize_coeffs_8bpc``): each output's weights normalised to 1, then scaled by
    2^22 and rounded half away from zero."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = filterscale  # bilinear: a support of 1, widened when shrinking
    center = (np.arange(out_size) + 0.5) * scale
    first = np.maximum((center - support + 0.5).astype(np.int64), 0)  # C's (int): towards zero
    last = np.minimum((center + support + 0.5).astype(np.int64), in_size)
    x = np.arange(in_size)[None, :]
    inside = (x >= first[:, None]) & (x < last[:, None])
    weights = np.where(inside, np.maximum(0.0, 1.0 - np.abs((x - center[:, None] + 0.5) / filterscale)), 0.0)
    totals = weights.sum(axis=1, keepdims=True)
    weights = np.divide(weights, totals, out=np.zeros_like(weights), where=totals != 0)
    return np.trunc(0.5 + weights * (1 << PRECISION_BITS))


@functools.lru_cache(maxsize=256)
def _weights(in_size: int, out_size: int, device):
    import torch

    return torch.from_numpy(pillow_weights(in_size, out_size)).to(device)


def check_decode(decode: str) -> str:
    """``decode`` when it is one of :data:`DECODE_MODES`; else ConfigError naming the choices."""
    if decode not in DECODE_MODES:
        raise ConfigError(f"decode: {decode!r} is invalid; expected one of {', '.join(DECODE_MODES)}")
    return decode
