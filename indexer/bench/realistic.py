"""Seeded synthetic vectors shaped like trained image embeddings.

Isotropic blobs (:mod:`indexer.bench.synthetic`) are the easy case for IVF and the worst for
graphs and PCA. Trained embeddings instead sit near a low-dimensional, curved manifold with
classes of uneven size and spread. Here:

1. a latent mixture in ``latent_dim`` dims: centres ~ N(0, I); cluster weights log-normal (a few
   big classes, many small ones); each cluster has its own spread (log-normal) and its own
   per-axis scales (anisotropic);
2. a fixed random two-layer map ``tanh(z W1 + b1) W2`` into ``d`` dims (non-linear, so PCA cannot
   undo it exactly), plus a little isotropic noise;
3. L2 normalisation.

The defaults were fitted so that the local intrinsic dimensionality (MLE, k = 20) and the
relative contrast of 8,189 points match the Flowers-102 embeddings of the ``mnv2`` model
(LID 14.4, relative contrast 2.38) within 20 %; see docs/BENCHMARKS.md. The map and the
mixture depend only on (d, n_clusters, seed, latent_dim), so base and queries drawn with the
same values share them while coming from independent random streams.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from indexer.core.errors import InputError

DEFAULT_LATENT_DIM = 32
DEFAULT_SPREAD = 0.8  # median cluster standard deviation in latent units (centres are ~N(0, I))
SIZE_SIGMA = 1.0  # log-normal sigma of cluster weights: uneven class sizes
SPREAD_SIGMA = 0.35  # log-normal sigma of per-cluster spreads
AXIS_SIGMA = 0.5  # log-normal sigma of per-axis scales inside a cluster
AMBIENT_NOISE = 0.02  # isotropic noise norm after the map, relative to the signal's
_CHUNK = 65_536


@dataclass(frozen=True)
class Mixture:
    """The latent mixture and the map into d dims; a function of its arguments only."""

    centres: np.ndarray  # (c, r) float32
    weights: np.ndarray  # (c,) float64, sums to 1
    scales: np.ndarray  # (c, r) float32 per-cluster, per-axis standard deviations
    w1: np.ndarray  # (r, d) float32
    b1: np.ndarray  # (d,) float32
    w2: np.ndarray  # (d, d) float32


def default_n_clusters(n: int) -> int:
    """About √n / 2 classes (500 for a million vectors, 45 for Flowers' 8,189), at least 1."""
    return max(1, int(round(np.sqrt(n) / 2)))


def mixture(
    d: int, n_clusters: int, seed: int = 0, latent_dim: int | None = None, spread: float = DEFAULT_SPREAD
) -> Mixture:
    """The seeded mixture and map for d output dims (latent_dim None: min(32, d))."""
    latent_dim = min(DEFAULT_LATENT_DIM, d) if latent_dim is None else latent_dim
    if d < 2 or n_clusters < 1 or not 1 <= latent_dim <= d:
        raise InputError(
            f"need d >= 2, n_clusters >= 1 and 1 <= latent_dim <= d; got d={d}, n_clusters={n_clusters}, "
            f"latent_dim={latent_dim}"
        )
    if not spread > 0:
        raise InputError(f"spread must be > 0; got {spread}")
    rng = np.random.default_rng([seed, 10])
    centres = rng.standard_normal((n_clusters, latent_dim)).astype(np.float32)
    weights = rng.lognormal(0.0, SIZE_SIGMA, n_clusters)
    per_cluster = spread * rng.lognormal(0.0, SPREAD_SIGMA, (n_clusters, 1))
    scales = (per_cluster * rng.lognormal(0.0, AXIS_SIGMA, (n_clusters, latent_dim))).astype(np.float32)
    w1 = (rng.standard_normal((latent_dim, d)) / np.sqrt(latent_dim)).astype(np.float32)
    b1 = (0.5 * rng.standard_normal(d)).astype(np.float32)
    w2 = (rng.standard_normal((d, d)) / np.sqrt(d)).astype(np.float32)
    return Mixture(centres, weights / weights.sum(), scales, w1, b1, w2)


def sample(mix: Mixture, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """((n, d) float32 L2-normalised vectors, (n,) int64 cluster labels) drawn from ``mix``."""
    if n < 1:
        raise InputError(f"n must be >= 1; got {n}")
    labels = rng.choice(len(mix.weights), size=n, p=mix.weights).astype(np.int64)
    d = mix.w2.shape[1]
    out = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        chunk_labels = labels[start:stop]
        z = rng.standard_normal((stop - start, mix.centres.shape[1]), dtype=np.float32)
        z = mix.centres[chunk_labels] + z * mix.scales[chunk_labels]
        x = np.tanh(z @ mix.w1 + mix.b1) @ mix.w2
        signal = np.sqrt((x * x).sum(axis=1, keepdims=True).mean())
        x += rng.standard_normal(x.shape, dtype=np.float32) * np.float32(AMBIENT_NOISE * signal / np.sqrt(d))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[start:stop] = x
    return out, labels


def make_realistic(
    n: int,
    d: int,
    n_clusters: int | None = None,
    seed: int = 0,
    latent_dim: int | None = None,
    spread: float = DEFAULT_SPREAD,
) -> tuple[np.ndarray, np.ndarray]:
    """Base set: ((n, d) float32 L2-normalised vectors, (n,) int64 cluster labels)."""
    n_clusters = default_n_clusters(n) if n_clusters is None else n_clusters
    return sample(mixture(d, n_clusters, seed, latent_dim, spread), n, np.random.default_rng([seed, 11]))


def make_realistic_queries(
    n_queries: int,
    d: int,
    n_clusters: int,
    seed: int = 0,
    latent_dim: int | None = None,
    spread: float = DEFAULT_SPREAD,
) -> tuple[np.ndarray, np.ndarray]:
    """Held-out queries from the same mixture as ``make_realistic`` with the same arguments."""
    return sample(mixture(d, n_clusters, seed, latent_dim, spread), n_queries, np.random.default_rng([seed, 12]))


def realistic_chunks(
    n: int,
    d: int,
    n_clusters: int | None = None,
    seed: int = 0,
    latent_dim: int | None = None,
    spread: float = DEFAULT_SPREAD,
    chunk: int = 250_000,
) -> Iterator[np.ndarray]:
    """The base set of :func:`make_realistic`'s distribution (same mixture and map) in chunks of ``chunk``
    rows, each drawn from its own seeded stream, so N larger than memory can be written out as it comes.
    (The points differ from ``make_realistic``'s, which draws all n from one stream.)"""
    n_clusters = default_n_clusters(n) if n_clusters is None else n_clusters
    mix = mixture(d, n_clusters, seed, latent_dim, spread)
    for number, start in enumerate(range(0, n, chunk)):
        yield sample(mix, min(chunk, n - start), np.random.default_rng([seed, 13, number]))[0]
