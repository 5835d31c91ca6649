from __future__ import annotations

import numpy as np
import pytest

from indexer.core.build import build_index
from indexer.core.errors import IndexerError, InputError
from indexer.core.factory import IndexParams
from indexer.core.fidelity import ann_recall_at_k
from indexer.core.search import drop_self, exact_search, search
from tests.indexer.conftest import brute_force


def test_flat_returns_the_brute_force_neighbours(clustered, queries) -> None:
    base, ids, _ = clustered
    index, _ = build_index(IndexParams("flat"), base, ids)
    scores, found = search(index, queries, 10)
    assert scores.dtype == np.float32 and found.dtype == np.int64 and found.shape == (len(queries), 10)
    ref_scores, ref_ids = brute_force(base, ids, queries, 10)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-5)
    # identical up to ties: same score at each rank, and a tie-tolerant recall of 1
    assert ann_recall_at_k(found, ref_ids, 10, exact_scores=ref_scores) == 1.0


def test_exact_search_matches_numpy_and_excludes_self(clustered) -> None:
    base, ids, _ = clustered
    scores, found = exact_search(base, ids, base[:20], 5, exclude_self_ids=ids[:20])
    ref_scores, ref_ids = brute_force(base, ids, base[:20], 6)
    np.testing.assert_allclose(scores, ref_scores[:, 1:], rtol=1e-5, atol=1e-5)
    assert not (found == ids[:20, None]).any()


def test_k_above_ntotal_is_padded(clustered) -> None:
    base, ids, _ = clustered
    index, _ = build_index(IndexParams("flat"), base[:5], ids[:5])
    scores, found = search(index, base[:2], 8)
    assert found.shape == (2, 8)
    assert (found[:, 5:] == -1).all() and np.isneginf(scores[:, 5:]).all()
    assert np.isin(found[:, :5], ids[:5]).all()


def test_bad_k_and_empty_index(clustered) -> None:
    base, ids, _ = clustered
    index, _ = build_index(IndexParams("flat"), base[:5], ids[:5])
    for k in (0, -1, 2.5, True):
        with pytest.raises(InputError, match="k must be"):
            search(index, base[:1], k)
    index.reset()
    with pytest.raises(IndexerError, match="empty"):
        search(index, base[:1], 1)


def test_per_call_settings_leave_the_index_alone(clustered, queries) -> None:
    from indexer.core.settings import default_settings

    base, ids, _ = clustered
    index, _ = build_index(IndexParams("ivf", nlist=16, nprobe=2), base, ids)
    wide = search(index, queries, 5, nprobe=16)[1]
    assert default_settings(index) == {"nprobe": 2}
    assert not np.array_equal(wide, search(index, queries, 5)[1]), "nprobe=16 reached lists that 2 does not"
    assert np.array_equal(wide, search(index, queries, 5, nprobe=16)[1])


@pytest.mark.parametrize(("kind", "knob", "values"), [
    ("ivf", "nprobe", [1, 2, 3, 5, 8, 13, 16, 4]),
    ("pca-ivf", "nprobe", [1, 16, 2, 8, 3, 5, 4, 12]),
    ("hnsw", "efSearch", [10, 16, 24, 40, 64, 12, 200, 32]),
])
def test_one_index_searched_from_8_threads_at_different_settings_gives_the_sequential_results(
    kind, knob, values, clustered, queries
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    base, ids, _ = clustered
    index, _ = build_index(IndexParams(kind, nlist=16, pca_dim=8, hnsw_m=8), base, ids)
    sequential = [search(index, queries, 10, **{knob: value}) for value in values]
    assert len({found.tobytes() for _, found in sequential}) > 2, "the settings must change the answers"

    def one_thread(position: int):
        value = values[position]
        return [search(index, queries, 10, **{knob: value}) for _ in range(20)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(one_thread, range(8)))
    for expected, repeats in zip(sequential, threaded):
        for scores, found in repeats:
            assert np.array_equal(found, expected[1])
            assert np.array_equal(scores, expected[0])


def test_drop_self_drops_own_id_or_last() -> None:
    ids = np.array([[7, 1, 2], [3, 4, 5]])
    scores = np.array([[1.0, 0.9, 0.8], [0.7, 0.6, 0.5]], np.float32)
    s, i = drop_self(scores, ids, np.array([7, 9]), 2)
    np.testing.assert_array_equal(i, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(s, np.array([[0.9, 0.8], [0.7, 0.6]], np.float32))
