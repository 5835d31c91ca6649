from __future__ import annotations

import numpy as np

from indexer.bench.synthetic import make_clustered, make_queries
from indexer.core.search import exact_search
from tests.indexer.conftest import brute_force


def test_clustered_vectors_are_seeded_normalised_float32() -> None:
    a, la = make_clustered(500, 16, n_clusters=5, seed=3)
    b, lb = make_clustered(500, 16, n_clusters=5, seed=3)
    c, _ = make_clustered(500, 16, n_clusters=5, seed=4)
    assert a.dtype == np.float32 and a.shape == (500, 16) and la.shape == (500,)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    assert not np.array_equal(a, c)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    assert set(np.unique(la)) <= set(range(5))


def test_vectors_are_clustered() -> None:
    base, labels = make_clustered(1000, 32, n_clusters=10, seed=0)
    sims = base @ base.T
    same = labels[:, None] == labels[None, :]
    assert sims[same].mean() > sims[~same].mean() + 0.3


def test_queries_share_clusters_but_not_points() -> None:
    base, labels = make_clustered(1000, 32, n_clusters=10, seed=0)
    q, ql = make_queries(20, 32, n_clusters=10, seed=0)
    assert not np.isin(q, base).all(axis=1).any()
    nearest = labels[np.argmax(q @ base.T, axis=1)]
    assert (nearest == ql).mean() > 0.9


def test_exact_search_on_synthetic_data_equals_numpy_brute_force() -> None:
    base, _ = make_clustered(800, 16, n_clusters=8, seed=1)
    q, _ = make_queries(30, 16, n_clusters=8, seed=1)
    ids = np.arange(800) + 5
    scores, found = exact_search(base, ids, q, 7)
    ref_scores, ref_ids = brute_force(base, ids, q, 7)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(found, ref_ids)


def test_intrinsic_dim_puts_data_in_a_low_dim_subspace() -> None:
    base, labels = make_clustered(2000, 32, n_clusters=10, seed=0, spread=0.3, intrinsic_dim=4)
    q, ql = make_queries(20, 32, n_clusters=10, seed=0, spread=0.3, intrinsic_dim=4)
    singular = np.linalg.svd(base - base.mean(0), compute_uv=False)
    explained = (singular[:4] ** 2).sum() / (singular**2).sum()
    assert explained > 0.9
    assert (labels[np.argmax(q @ base.T, axis=1)] == ql).mean() > 0.9
