"""The classical baseline: dense RootSIFT descriptors → VLAD → PCA-whitening. No torch anywhere.

Why dense: at 64 px OpenCV's detector finds few keypoints (a median of 51, minimum 9, over 205 sampled
Flowers images; docs/BENCHMARKS.md), bunched on high-contrast edges, so the petals' texture and the
background that tell species apart are barely described. A grid of SIFT descriptors (every ``step``
px, ``patch`` px wide, on the image upsampled to ``image_size``) describes every part of every image
with the same number of descriptors, which is what category-level retrieval wants. The defaults (48 px
windows every 8 px at 128 px: an 11 x 11 grid) were chosen on train + val by ``benchmarks/sift_grid.py``.

Pipeline: image → grey, ``image_size`` px → (m, 128) SIFT on a grid → RootSIFT (L1, square root) →
VLAD against a k-means codebook (k, 128) fitted with FAISS: residuals summed per nearest centroid,
signed square root (power normalisation), L2 per centroid (intra normalisation), L2 overall →
(k·128,) → PCA to ``dim``, each axis divided by its standard deviation to the power ``whitening``
(1 = full whitening, 0 = plain PCA) → L2. The default 0.25 was chosen on train + val: full whitening
lifts the weakest axes to equal weight and lost MAP@R there (docs/BENCHMARKS.md, "The classical baseline").
"Training" fits the codebook and the PCA on the training images; the model is one ``.npz`` file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from indexer.core.files import atomic_write
from models.errors import CheckpointError, ModelError

NETWORK = "sift-vlad"
DESCRIPTOR_DIM = 128
DESCRIPTORS_PER_IMAGE_FOR_CODEBOOK = 64  # sampled from each training image for k-means
WHITEN_EPS = 1e-6


@dataclass(frozen=True)
class SiftVladSpec:
    """codebook: k-means centroids; dim: output dims after PCA; image_size: px the image is resized to
    (square) before SIFT; step / patch: the dense grid's spacing and SIFT patch size (px); seed: k-means
    and sampling seed; whitening: the power of 1/std each PCA axis is scaled by (0 none, 1 full)."""

    codebook: int = 64
    dim: int = 128
    image_size: int = 128
    step: int = 8
    patch: int = 48
    seed: int = 0
    whitening: float = 0.25

    def __post_init__(self) -> None:
        if isinstance(self.whitening, bool) or not isinstance(self.whitening, (int, float)) or not (
                0.0 <= self.whitening <= 1.0):
            raise ModelError(f"sift-vlad whitening must be a number in [0, 1]; got {self.whitening!r}")
        object.__setattr__(self, "whitening", float(self.whitening))
        for name, minimum in (("codebook", 2), ("dim", 1), ("image_size", 16), ("step", 1), ("patch", 4),
                              ("seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                raise ModelError(f"sift-vlad {name} must be an integer >= {minimum}; got {value!r}")
        if self.patch > self.image_size:
            raise ModelError(f"sift-vlad patch ({self.patch} px) must fit in image_size ({self.image_size} px)")

    def to_dict(self) -> dict:
        return asdict(self)


def open_image(path: str | os.PathLike[str], spec: SiftVladSpec):
    """``path`` decoded as SIFT-VLAD reads every image, when it is fitted and when it embeds: RGB, through an
    embedded thumbnail or a reduced JPEG decode when that is still at least twice ``image_size`` (ImageError)."""
    from models.images import open_rgb

    return open_rgb(path, min_side=2 * spec.image_size, thumbnails=True)


def decode_image(data: bytes, name: str, spec: SiftVladSpec):
    """Encoded image bytes decoded exactly as :func:`open_image` decodes a file (ImageError)."""
    from models.images import decode_rgb

    return decode_rgb(data, name, min_side=2 * spec.image_size, thumbnails=True)


def _cv2():
    try:
        import cv2
    except ImportError:
        raise ModelError(
            "sift-vlad needs OpenCV: pip install opencv-python-headless (or '.[classical]')"
        ) from None
    return cv2


# OpenCV's SIFT descriptor is 4 x 4 spatial bins, each 3 * (size / 2) px wide, so a keypoint of ``size``
# describes a window 6 * size px wide. A keypoint of size ``patch`` would describe a window six times wider than
# the patch (96 px for a 16 px patch: nearly the whole 128 px image, and 12 times slower to compute).
SIFT_WINDOW_PER_SIZE = 6.0


def _grid(spec: SiftVladSpec) -> list:
    """Keypoints every ``step`` px whose descriptors each cover a ``patch`` px square, all inside the image."""
    cv2 = _cv2()
    half = spec.patch / 2
    centres = np.arange(half, spec.image_size - half + 1e-6, spec.step)
    size = spec.patch / SIFT_WINDOW_PER_SIZE
    return [cv2.KeyPoint(float(x), float(y), size) for y in centres for x in centres]


def dense_root_sift(image, spec: SiftVladSpec) -> np.ndarray:
    """PIL image → (m, 128) float32 RootSIFT descriptors on the spec's grid (m the same for every image)."""
    cv2 = _cv2()
    from PIL import Image

    grey = np.asarray(image.convert("L").resize((spec.image_size, spec.image_size), Image.Resampling.BICUBIC))
    sift = cv2.SIFT_create()
    _, descriptors = sift.compute(grey, _grid(spec))
    if descriptors is None:
        return np.zeros((0, DESCRIPTOR_DIM), np.float32)
    descriptors = descriptors.astype(np.float32)
    descriptors /= np.maximum(descriptors.sum(axis=1, keepdims=True), 1e-12)  # RootSIFT: Hellinger kernel
    return np.sqrt(descriptors)


def vlad(descriptors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(m, 128) descriptors, (k, 128) centroids → (k·128,) float32 VLAD, power- and intra-normalised, L2."""
    k, d = centroids.shape
    out = np.zeros((k, d), np.float32)
    if len(descriptors):
        distances = ((descriptors[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
        nearest = distances.argmin(axis=1)
        np.add.at(out, nearest, descriptors - centroids[nearest])
    out = np.sign(out) * np.sqrt(np.abs(out))  # power normalisation
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    out = np.where(norms > 0, out / np.maximum(norms, 1e-12), 0.0)  # intra normalisation
    flat = out.reshape(-1)
    total = np.linalg.norm(flat)
    return (flat / total if total > 0 else flat).astype(np.float32)


@dataclass(frozen=True)
class SiftVladModel:
    """A fitted model: spec, centroids (k, 128), PCA mean (k·128,), projection (k·128, dim) with whitening."""

    spec: SiftVladSpec
    centroids: np.ndarray
    mean: np.ndarray
    projection: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.projection.shape[1])

    def embed_images(self, images: Sequence) -> np.ndarray:
        """List of PIL images → (n, dim) float32, L2-normalised."""
        if not images:
            return np.zeros((0, self.dim), np.float32)
        raw = np.stack([vlad(dense_root_sift(image, self.spec), self.centroids) for image in images])
        return self.project(raw)

    def project(self, raw: np.ndarray) -> np.ndarray:
        """(n, k·128) VLAD → (n, dim) float32 whitened, L2-normalised."""
        out = (raw - self.mean) @ self.projection
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.ascontiguousarray(out / np.maximum(norms, 1e-12), dtype=np.float32)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write one ``.npz`` (atomically and durably: a temporary file fsynced and renamed into place)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as handle:
            np.savez(handle, spec=np.array(json.dumps(self.spec.to_dict())), centroids=self.centroids,
                     mean=self.mean, projection=self.projection)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SiftVladModel:
        try:
            with np.load(path, allow_pickle=False) as data:
                spec = SiftVladSpec(**json.loads(str(data["spec"])))
                return cls(spec, data["centroids"].astype(np.float32), data["mean"].astype(np.float32),
                           data["projection"].astype(np.float32))
        except (OSError, KeyError, ValueError) as exc:
            raise CheckpointError(f"sift-vlad model {str(path)!r} is unreadable ({exc})") from None


def fit_sift_vlad(images: Sequence, spec: SiftVladSpec, *, progress: bool = False) -> SiftVladModel:
    """Fit the codebook (FAISS k-means on descriptors sampled from ``images``) and the PCA-whitening.

    ``images``: PIL images (the training split). Deterministic for a given spec.seed.
    """
    import faiss

    if len(images) < 2:
        raise ModelError(f"sift-vlad needs at least 2 training images; got {len(images)}")
    rng = np.random.default_rng(spec.seed)
    iterator = images
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(images, desc="sift", unit="img")
    per_image = [dense_root_sift(image, spec) for image in iterator]
    sample = np.concatenate([
        d[rng.choice(len(d), size=min(len(d), DESCRIPTORS_PER_IMAGE_FOR_CODEBOOK), replace=False)]
        for d in per_image if len(d)
    ]).astype(np.float32)
    if len(sample) < spec.codebook:
        raise ModelError(f"sift-vlad codebook of {spec.codebook} needs at least that many descriptors; "
                         f"got {len(sample)}")
    kmeans = faiss.Kmeans(DESCRIPTOR_DIM, spec.codebook, niter=25, seed=spec.seed, verbose=False,
                          max_points_per_centroid=100_000)
    kmeans.train(np.ascontiguousarray(sample))
    centroids = np.ascontiguousarray(kmeans.centroids, dtype=np.float32)
    raw = np.stack([vlad(d, centroids) for d in per_image])
    mean, projection = fit_projection(raw, spec.dim, spec.whitening)
    return SiftVladModel(spec, centroids, mean, projection)


def fit_projection(raw: np.ndarray, dim: int, whitening: float) -> tuple[np.ndarray, np.ndarray]:
    """(n, k·128) raw VLADs → their mean and the (k·128, dim) PCA projection, each axis scaled by
    std^-whitening. Deterministic: each axis's sign is fixed."""
    if dim > min(raw.shape) - 1:
        raise ModelError(f"sift-vlad dim {dim} needs more than {dim} training images and VLAD dims; "
                         f"got {raw.shape[0]} images of {raw.shape[1]} dims")
    mean = raw.mean(axis=0)
    # SVD of the centred data (n << k·128): right singular vectors are the principal axes, and
    # singular values / sqrt(n - 1) the standard deviations to whiten by.
    _, singular, axes = np.linalg.svd((raw - mean).astype(np.float64), full_matrices=False)
    std = singular[:dim] / np.sqrt(max(1, raw.shape[0] - 1))
    projection = (axes[:dim].T * (std + WHITEN_EPS) ** -whitening).astype(np.float32)
    # Fix each axis's sign (SVD's is arbitrary) so refits on the same data agree bit for bit.
    signs = np.sign(projection[np.abs(projection).argmax(axis=0), np.arange(dim)])
    projection *= np.where(signs == 0, 1.0, signs).astype(np.float32)
    return mean.astype(np.float32), projection
