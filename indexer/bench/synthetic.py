"""Seeded clustered synthetic vectors, in the spirit of faiss ``contrib.datasets``.

Uniform noise on the sphere has no neighbourhood structure, so every ANN index
looks equally bad on it; real embeddings are clustered. Here each vector is a
cluster centre plus Gaussian noise, L2-normalised. The centres depend only on
(d, n_clusters, seed, intrinsic_dim), so base and queries drawn with the same
values share clusters while coming from independent random streams.

By default centres and noise are isotropic in all d dims: a hard case for PCA and
graph indices (HNSW). With ``intrinsic_dim = r`` both live in one random r-dim
subspace (plus 5 % isotropic noise), like faiss's ``SyntheticDataset`` and closer
to trained embeddings, whose variance concentrates in a few directions.
"""

from __future__ import annotations

import numpy as np

from indexer.core.errors import InputError

DEFAULT_SPREAD = 1.0
"""Expected noise norm around a unit-norm centre. 1.0: well-separated clusters
(IVF needs few probes); 1.7: neighbours start to cross clusters; 2+: nearly uniform."""

AMBIENT_NOISE = 0.05  # isotropic share of the noise when intrinsic_dim is set
_CHUNK = 65_536  # rows generated at a time, to bound float temporaries at 1M x 128


def default_n_clusters(n: int) -> int:
    """About √n clusters (1,000 for a million vectors), at least 1."""
    return max(1, int(round(np.sqrt(n))))


def _subspace(d: int, intrinsic_dim: int | None, seed: int) -> np.ndarray | None:
    """(r, d) float32 orthonormal rows, or None for isotropic data."""
    if intrinsic_dim is None:
        return None
    if not 1 <= intrinsic_dim <= d:
        raise InputError(f"intrinsic_dim must be in 1..{d} (d); got {intrinsic_dim}")
    q, _ = np.linalg.qr(np.random.default_rng([seed, 3]).standard_normal((d, intrinsic_dim)))
    return np.ascontiguousarray(q.T, dtype=np.float32)


def cluster_centres(d: int, n_clusters: int, seed: int = 0, intrinsic_dim: int | None = None) -> np.ndarray:
    """(n_clusters, d) float32 unit-norm centres, a function of the arguments only."""
    if d < 1 or n_clusters < 1:
        raise InputError(f"d and n_clusters must be >= 1; got d={d}, n_clusters={n_clusters}")
    rng = np.random.default_rng([seed, 0])
    basis = _subspace(d, intrinsic_dim, seed)
    if basis is None:
        centres = rng.standard_normal((n_clusters, d), dtype=np.float32)
    else:
        centres = rng.standard_normal((n_clusters, basis.shape[0]), dtype=np.float32) @ basis
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    return centres


def _sample(
    centres: np.ndarray,
    n: int,
    rng: np.random.Generator,
    spread: float,
    basis: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    n_clusters, d = centres.shape
    labels = rng.integers(0, n_clusters, size=n, dtype=np.int64)
    out = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        chunk = rng.standard_normal((stop - start, d), dtype=np.float32)
        if basis is None:
            chunk *= np.float32(spread / np.sqrt(d))
        else:
            r = basis.shape[0]
            low_rank = rng.standard_normal((stop - start, r), dtype=np.float32) @ basis
            chunk = low_rank * np.float32(spread / np.sqrt(r)) + chunk * np.float32(
                AMBIENT_NOISE * spread / np.sqrt(d)
            )
        chunk += centres[labels[start:stop]]
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        out[start:stop] = chunk
    return out, labels


def make_clustered(
    n: int,
    d: int,
    n_clusters: int | None = None,
    seed: int = 0,
    spread: float = DEFAULT_SPREAD,
    intrinsic_dim: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Base set: ((n, d) float32 L2-normalised vectors, (n,) int64 cluster labels)."""
    if n < 1:
        raise InputError(f"n must be >= 1; got {n}")
    n_clusters = default_n_clusters(n) if n_clusters is None else n_clusters
    centres = cluster_centres(d, n_clusters, seed, intrinsic_dim)
    basis = _subspace(d, intrinsic_dim, seed)
    return _sample(centres, n, np.random.default_rng([seed, 1]), spread, basis)


def make_queries(
    n_queries: int,
    d: int,
    n_clusters: int,
    seed: int = 0,
    spread: float = DEFAULT_SPREAD,
    intrinsic_dim: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Held-out queries from the same clusters as ``make_clustered`` with the same arguments.

    Returns ((n_queries, d) float32 L2-normalised, (n_queries,) int64 labels); pass
    the base set's actual ``n_clusters`` (``default_n_clusters(n)`` if it was defaulted).
    """
    if n_queries < 1:
        raise InputError(f"n_queries must be >= 1; got {n_queries}")
    centres = cluster_centres(d, n_clusters, seed, intrinsic_dim)
    basis = _subspace(d, intrinsic_dim, seed)
    return _sample(centres, n_queries, np.random.default_rng([seed, 2]), spread, basis)
