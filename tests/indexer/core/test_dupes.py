"""Near-duplicate groups from range search: pairs above the threshold, joined into groups."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.core.dupes import duplicate_groups, group_pairs, similar_pairs
from indexer.core.errors import InputError


def _unit(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def vectors():
    """60 random unit vectors (ids 100..159) plus an exact copy of #0 (id 500) and a near copy of #1 (id 501)."""
    rng = np.random.default_rng(0)
    base = _unit(rng.standard_normal((60, 64)))
    near = _unit([base[1] + 0.02 * rng.standard_normal(64)])[0]
    x = np.vstack([base, base[:1], near]).astype(np.float32)
    ids = np.r_[np.arange(100, 160), 500, 501].astype(np.int64)
    return x, ids


def test_range_search_finds_the_copy_and_the_near_copy_and_nothing_else(vectors):
    x, ids = vectors
    pairs, sims = similar_pairs(x, ids, 0.95)
    assert pairs.tolist() == [[100, 500], [101, 501]]
    assert sims[0] == pytest.approx(1.0, abs=1e-5) and 0.95 <= sims[1] < 0.9999


def test_threshold_one_finds_only_exact_copies(vectors):
    x, ids = vectors
    groups = duplicate_groups(x, ids, 1.0)
    assert [g.ids for g in groups] == [(100, 500)]
    assert groups[0].min_similarity == pytest.approx(1.0, abs=1e-5)


def test_range_search_agrees_with_all_pairs_in_numpy(vectors):
    x, ids = vectors
    threshold = 0.2  # low enough that random vectors pair up
    pairs, sims = similar_pairs(x, ids, threshold, batch=7)  # batches that do not divide n
    cos = x @ x.T
    a, b = np.nonzero(np.triu(cos >= threshold, 1))
    expected = sorted(tuple(sorted(p)) for p in zip(ids[a].tolist(), ids[b].tolist()))
    assert [tuple(p) for p in pairs.tolist()] == expected
    row = {int(i): r for r, i in enumerate(ids.tolist())}
    assert np.allclose(sims, [cos[row[a], row[b]] for a, b in pairs.tolist()], atol=1e-5)


def test_groups_join_chains_and_report_the_smallest_similarity():
    assert group_pairs(np.array([[3, 4], [1, 2], [2, 3], [8, 9]])) == [(1, 2, 3, 4), (8, 9)]
    x = _unit([[1, 0], [1, 0.3], [1, 0.6]])  # a chain: ends less alike than neighbours
    groups = duplicate_groups(x, np.array([1, 2, 3]), 0.95)
    assert [g.ids for g in groups] == [(1, 2, 3)]
    assert groups[0].min_similarity == pytest.approx(float(x[0] @ x[2]), abs=1e-6)


@pytest.mark.parametrize("threshold", [0.0, -0.5, 1.5])
def test_threshold_outside_zero_one_is_refused(vectors, threshold):
    with pytest.raises(InputError, match="threshold"):
        similar_pairs(*vectors, threshold)
