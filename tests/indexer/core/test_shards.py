"""indexer.core.shards: id ranges, an IVF index split by them, and the shards' top k merged back."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.core.build import build_index
from indexer.core.errors import InputError
from indexer.core.factory import IndexParams
from indexer.core.search import search
from indexer.core.shards import IdRange, id_ranges, merge_top_k, owners, split_by_ranges


def unit_vectors(n: int, d: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(8, d))[rng.integers(0, 8, n)] + 0.4 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_ranges_cover_every_id_once_and_balance_the_count():
    ids = np.arange(1, 1001) * 7
    ranges = id_ranges(ids, 4)
    assert ranges[0].lo == 0 and ranges[-1].hi is None
    assert [int(r.holds(ids).sum()) for r in ranges] == [250, 250, 250, 250]
    assert owners(ranges, np.array([0, 7, 10**12])).tolist() == [0, 0, 3]  # new ids go to the open range
    with pytest.raises(InputError, match="--shards 5: the index holds only 4 vectors"):
        id_ranges(np.arange(4), 5)
    with pytest.raises(InputError, match="lo=5, hi=5"):
        IdRange(5, 5)


@pytest.mark.parametrize("kind", ["ivf", "ivfsq", "pca-ivf"])
def test_the_merged_top_k_equals_the_whole_index(kind):
    x = unit_vectors(3000)
    ids = np.arange(3000, dtype=np.int64) * 3 + 1
    whole, _ = build_index(IndexParams(kind, nlist=30, nprobe=5, pca_dim=16), x, ids)
    parts = split_by_ranges(whole, id_ranges(ids, 3))
    assert sum(part.ntotal for part in parts) == whole.ntotal
    queries = unit_vectors(40, seed=1)
    scores, found = search(whole, queries, 10, nprobe=5)
    merged = merge_top_k([search(part, queries, 10, nprobe=5) for part in parts], 10)
    assert np.array_equal(merged[1], found) and np.array_equal(merged[0], scores)


def test_merge_pads_like_search_and_a_flat_index_is_refused():
    merged_scores, merged_ids = merge_top_k([(np.array([[0.9]], np.float32), np.array([[4]]))], 3)
    assert merged_ids.tolist() == [[4, -1, -1]] and np.isneginf(merged_scores[0, 1:]).all()
    flat, _ = build_index(IndexParams("flat"), unit_vectors(50), np.arange(50))
    with pytest.raises(InputError, match="shards split IVF indexes only"):
        split_by_ranges(flat, id_ranges(np.arange(50), 2))
