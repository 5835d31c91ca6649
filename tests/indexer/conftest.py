"""Shared fixtures: seeded clustered vectors made in code (no committed files)."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.bench.synthetic import make_clustered, make_queries

N, D, N_CLUSTERS, SEED = 4000, 32, 40, 7


@pytest.fixture(scope="session")
def clustered() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(base (N, D) float32 normalised, ids (N,) int64 offset from 0, labels (N,))."""
    base, labels = make_clustered(N, D, N_CLUSTERS, SEED)
    ids = np.arange(N, dtype=np.int64) * 3 + 1000  # not 0..n-1, so id handling is exercised
    return base, ids, labels


@pytest.fixture(scope="session")
def queries() -> np.ndarray:
    return make_queries(50, D, N_CLUSTERS, SEED)[0]


def brute_force(
    base: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Plain-numpy exact inner-product top-k: ((q, k) scores, (q, k) ids)."""
    scores = queries.astype(np.float64) @ base.astype(np.float64).T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), ids[order]
