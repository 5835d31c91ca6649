"""The realistic generator: seeded, shaped like trained embeddings (LID, relative contrast), unlike blobs."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.bench.data_stats import data_stats, lid_mle
from indexer.bench.realistic import make_realistic, make_realistic_queries
from indexer.bench.synthetic import make_clustered
from indexer.core.errors import InputError

# The Flowers-102 embeddings of the mnv2 model (8,189 x 128), measured by data_stats (docs/BENCHMARKS.md).
FLOWERS_LID, FLOWERS_RC = 14.4, 2.38


def test_lid_mle_recovers_the_dimension_of_uniform_data() -> None:
    rng = np.random.default_rng(0)
    for dim in (2, 6):
        points = np.zeros((4000, 32), dtype=np.float32)
        points[:, :dim] = rng.random((4000, dim), dtype=np.float32)
        assert data_stats(points, n_queries=300)["lid"] == pytest.approx(dim, rel=0.2)
    assert np.isnan(lid_mle(np.zeros((1, 20)))).all(), "duplicates give no estimate, not a crash"


def test_realistic_data_on_a_fixed_seed_matches_the_flowers_embeddings_within_20_percent() -> None:
    base, labels = make_realistic(8189, 128, seed=0)
    stats = data_stats(base, n_queries=500)
    assert stats["lid"] == pytest.approx(FLOWERS_LID, rel=0.2)
    assert stats["relative_contrast"] == pytest.approx(FLOWERS_RC, rel=0.2)
    assert np.allclose(np.linalg.norm(base, axis=1), 1.0, atol=1e-5)
    sizes = np.bincount(labels)
    assert sizes.max() > 4 * np.median(sizes), "cluster sizes are uneven"
    blobs, _ = make_clustered(8189, 128, seed=0)
    assert data_stats(blobs, n_queries=500)["lid"] > 1.5 * stats["lid"], "blobs are much higher-dimensional"


def test_realistic_draws_are_seeded_and_queries_share_the_mixture() -> None:
    a, la = make_realistic(500, 32, n_clusters=10, seed=3)
    b, lb = make_realistic(500, 32, n_clusters=10, seed=3)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    q, _ = make_realistic_queries(50, 32, n_clusters=10, seed=3)
    assert q.shape == (50, 32) and not np.isin(q[:, 0], a[:, 0]).any(), "queries are held out"
    assert not np.array_equal(make_realistic(500, 32, n_clusters=10, seed=4)[0], a)
    with pytest.raises(InputError, match="latent_dim"):
        make_realistic(10, 8, latent_dim=9)
