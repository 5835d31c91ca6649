"""PCA-whitening of backbone features, fitted without labels and applied by a fixed torch layer.

A feature vector x (F,) becomes ``P (pn(x) - mean)`` (D,): ``pn`` is the signed power ``sign(x) |x|^power``
followed by L2 normalisation, ``P`` the top D principal axes scaled by ``(eigenvalue + shrinkage)^(-whitening/2)``
(``whitening`` 0: plain PCA, 1: full whitening). The network then L2-normalises the result, as for every
model. Defaults were chosen by measurement (docs/BENCHMARKS.md, "Your own photos").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.errors import ConfigError

DEFAULT_POWER = 0.5
DEFAULT_WHITENING = 0.25
DEFAULT_SHRINKAGE = 0.1  # added to every eigenvalue, as a fraction of the mean kept eigenvalue
MAX_FIT_SAMPLES = 20_000  # images whose features the PCA is fitted on (a seeded sample past this)


@dataclass(frozen=True)
class WhiteningSpec:
    """How the PCA is fitted: ``dim`` output dims, ``power`` of the signed power normalisation (1: none),
    ``whitening`` exponent in [0, 1], ``shrinkage`` >= 0 (see the module docstring)."""

    dim: int = 128
    power: float = DEFAULT_POWER
    whitening: float = DEFAULT_WHITENING
    shrinkage: float = DEFAULT_SHRINKAGE

    def __post_init__(self) -> None:
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim < 1:
            raise ConfigError(f"dim: {self.dim!r} is invalid; expected an integer >= 1")
        if not 0 < float(self.power) <= 1:
            raise ConfigError(f"power: {self.power!r} is invalid; expected a number in (0, 1]")
        if not 0 <= float(self.whitening) <= 1:
            raise ConfigError(f"whitening: {self.whitening!r} is invalid; expected a number in [0, 1]")
        if float(self.shrinkage) < 0:
            raise ConfigError(f"shrinkage: {self.shrinkage!r} is invalid; expected a number >= 0")

    def to_dict(self) -> dict:
        return asdict(self)


def normalise_features(features: np.ndarray, power: float) -> np.ndarray:
    """(n, F) → (n, F) float64: signed power, then unit L2 norm per row (zero rows stay zero)."""
    x = np.asarray(features, np.float64)
    if power != 1:
        x = np.sign(x) * np.abs(x) ** power
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def fit_whitening(features: np.ndarray, spec: WhiteningSpec) -> tuple[np.ndarray, np.ndarray]:
    """PCA-whitening fitted on (n, F) features: (mean (F,), projection (D, F)) float32.

    D is ``spec.dim`` capped at the rank the sample can give (n - 1, and F): axes past it have no variance to
    scale, so whitening them would only amplify noise in new images.
    """
    x = normalise_features(features, spec.power)
    n, width = x.shape
    if n < 2:
        raise ConfigError(f"features: {n} sample(s) is too few to fit a PCA; expected at least 2 images")
    mean = x.mean(axis=0)
    centred = x - mean
    covariance = centred.T @ centred / (n - 1)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)  # ascending
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, eigenvectors = np.clip(eigenvalues[order], 0, None), eigenvectors[:, order]
    dim = min(spec.dim, width, n - 1)
    kept = eigenvalues[:dim]
    floor = spec.shrinkage * float(kept.mean()) + 1e-12
    scale = (kept + floor) ** (-spec.whitening / 2)
    scale /= scale.max()  # only the relative weights matter after the final L2 normalisation
    projection = (eigenvectors[:, :dim] * scale).T
    return mean.astype(np.float32), np.ascontiguousarray(projection, np.float32)


def apply_whitening(features: np.ndarray, mean: np.ndarray, projection: np.ndarray, power: float) -> np.ndarray:
    """What :class:`PcaWhitening` computes, in numpy: (n, F) → (n, D) float32, L2-normalised."""
    y = (normalise_features(features, power) - mean) @ projection.T
    return (y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)).astype(np.float32)


class PcaWhitening(nn.Module):
    """A fixed head: (B, F) features → (B, D) whitened (not normalised; the network normalises). Its state
    (``power``, ``mean``, ``projection``) is in the state dict, so a checkpoint rebuilds it exactly."""

    def __init__(self, feature_dim: int, dim: int, *, trainable: bool = False) -> None:
        super().__init__()
        self.register_buffer("power", torch.ones(()))
        self.register_buffer("mean", torch.zeros(feature_dim))
        if trainable:  # a starting point that training moves (models.label_free); same state-dict key
            self.projection = nn.Parameter(torch.zeros(dim, feature_dim))
        else:
            self.register_buffer("projection", torch.zeros(dim, feature_dim))

    @classmethod
    def fitted(cls, features: np.ndarray, spec: WhiteningSpec, *, trainable: bool = False) -> PcaWhitening:
        """Fit on (n, F) features (:func:`fit_whitening`)."""
        mean, projection = fit_whitening(features, spec)
        head = cls(projection.shape[1], projection.shape[0], trainable=trainable)
        head.power.fill_(float(spec.power))
        head.mean.copy_(torch.from_numpy(mean))
        with torch.no_grad():
            head.projection.copy_(torch.from_numpy(projection))
        return head

    @property
    def dim(self) -> int:
        return int(self.projection.shape[0])

    def centred(self, features: torch.Tensor) -> torch.Tensor:
        """(B, F) features → (B, F): signed power, L2 normalisation, the fitted mean subtracted."""
        x = features.float()
        x = torch.sign(x) * torch.abs(x).pow(self.power)
        return F.normalize(x, dim=1) - self.mean

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.centred(features) @ self.projection.T


class ResidualWhitening(nn.Module):
    """The head trained without labels (:mod:`models.label_free`): a PCA-whitening whose projection is trained,
    plus a small MLP on the same centred input whose last layer starts at zero, so training starts exactly at
    the PCA-whitened features and learns a correction: (B, F) → (B, D), not normalised."""

    def __init__(self, feature_dim: int, dim: int, hidden: int = 512) -> None:
        super().__init__()
        self.pca = PcaWhitening(feature_dim, dim, trainable=True)
        self.residual = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        nn.init.zeros_(self.residual[2].weight)
        nn.init.zeros_(self.residual[2].bias)

    @classmethod
    def fitted(cls, features: np.ndarray, spec: WhiteningSpec, hidden: int = 512) -> ResidualWhitening:
        """The PCA fitted on (n, F) features (:func:`fit_whitening`; its dim may be capped), the residual at zero."""
        pca = PcaWhitening.fitted(features, spec, trainable=True)
        head = cls(pca.projection.shape[1], pca.dim, hidden)
        head.pca = pca
        return head

    @property
    def dim(self) -> int:
        return self.pca.dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.pca.centred(features)
        return x @ self.pca.projection.T + self.residual(x)
