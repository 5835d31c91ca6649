from __future__ import annotations

import numpy as np
import pytest

from indexer.core.build import build_index
from indexer.core.factory import IndexParams
from indexer.core.fidelity import ann_recall_at_k
from indexer.core.search import exact_search, search
from indexer.core.settings import default_settings
from indexer.core.tuning import tune_search_param


def test_ivf_reaches_target_recall_at_tuned_nprobe(clustered, queries) -> None:
    base, ids, _ = clustered
    index, _ = build_index(IndexParams("ivf", nlist=32), base, ids)
    tuned = tune_search_param(index, base, ids, k=10, target_recall=0.95, n_queries=100, seed=1)
    assert tuned is not None and tuned.param_name == "nprobe" and tuned.reached
    assert tuned.recall >= 0.95
    assert default_settings(index) == {"nprobe": tuned.value}
    # smallest: the value just below misses the target (when it was tried)
    below = dict(tuned.tried).get(tuned.value - 1)
    assert below is None or below < 0.95
    # and it holds on held-out queries
    exact_scores, exact_ids = exact_search(base, ids, queries, 20)
    _, found = search(index, queries, 10)
    assert ann_recall_at_k(found, exact_ids, 10, exact_scores=exact_scores) >= 0.9


def test_hnsw_tunes_ef_search(clustered) -> None:
    base, ids, _ = clustered
    index, _ = build_index(IndexParams("hnsw", hnsw_m=8), base, ids)
    tuned = tune_search_param(index, base, ids, k=10, target_recall=0.9, n_queries=50)
    assert tuned.param_name == "efSearch" and tuned.recall >= 0.9
    assert default_settings(index) == {"efSearch": tuned.value}


def test_flat_has_nothing_to_tune(clustered) -> None:
    base, ids, _ = clustered
    index, _ = build_index(IndexParams("flat"), base, ids)
    assert tune_search_param(index, base, ids) is None


def test_unreachable_target_is_reported(clustered) -> None:
    base, ids, _ = clustered
    index, _ = build_index(IndexParams("pca-ivf", nlist=16, pca_dim=4), base, ids)
    tuned = tune_search_param(index, base, ids, k=10, target_recall=0.99, n_queries=50)
    assert not tuned.reached and 1 <= tuned.value <= 16
    assert tuned.recall >= 0.99 * max(r for _, r in tuned.tried)


def test_apply_false_leaves_index_alone(clustered, queries) -> None:
    base, ids, _ = clustered
    index, _ = build_index(IndexParams("ivf", nlist=32, nprobe=3), base, ids)
    before = search(index, queries, 10)
    tuned = tune_search_param(index, base, ids, n_queries=30, apply=False)
    assert tuned.value != 3, "the tuned value differs, so leaving the index alone is observable"
    assert default_settings(index) == {"nprobe": 3}
    after = search(index, queries, 10)
    assert np.array_equal(before[1], after[1]), "searches still use nprobe 3"


def test_tuning_on_held_out_queries(clustered, queries) -> None:
    base, ids, _ = clustered
    index, _ = build_index(IndexParams("ivf", nlist=32), base, ids)
    tuned = tune_search_param(index, base, ids, k=10, target_recall=0.95, queries=queries)
    exact_scores, exact_ids = exact_search(base, ids, queries, 20)
    _, found = search(index, queries, 10)
    assert tuned.reached
    assert ann_recall_at_k(found, exact_ids, 10, exact_scores=exact_scores) == tuned.recall >= 0.95


def _unit(rng, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_a_graph_tuned_on_withheld_vectors_reaches_the_target_for_new_queries() -> None:
    """Stored vectors flatter a graph (at this size they pick efSearch 10, recall 0.69 for new queries); a build
    that withholds its tuning queries until tuned picks a setting that holds for queries it never saw."""
    from indexer.core.tuning import held_out_rows, tune_held_out

    rng = np.random.default_rng(0)
    x, fresh = _unit(rng, 12_000, 32), _unit(rng, 300, 32)
    ids = np.arange(len(x), dtype=np.int64) * 7 + 1
    rows = held_out_rows(len(x), seed=0)
    assert rows is not None and len(rows) == 200 and np.all(np.diff(rows) > 0)
    index, info = build_index(IndexParams(kind="hnsw", seed=0), x, ids, withhold=rows)
    assert index.ntotal == len(x) - len(rows) and info.n == len(x)
    tuned = tune_held_out(index, x, ids, rows, k=10, target_recall=0.95)
    assert tuned.reached and tuned.param_name == "efSearch"
    assert index.ntotal == len(x)  # the withheld vectors are added once tuned
    assert default_settings(index)["efSearch"] == tuned.value
    exact_scores, exact_ids = exact_search(x, ids, fresh, 20)
    _, found = search(index, fresh, 10)
    assert ann_recall_at_k(found, exact_ids, 10, exact_scores=exact_scores) >= 0.92
    _, found = search(index, x[rows[:20]], 1)
    assert np.array_equal(found[:, 0], ids[rows[:20]])  # they are searchable like every other vector


def test_withheld_rows_are_left_out_of_any_kind_and_checked() -> None:
    from indexer.core.errors import InputError
    from indexer.core.membership import indexed_ids

    rng = np.random.default_rng(1)
    x = _unit(rng, 500, 8)
    ids = np.arange(500, dtype=np.int64)
    rows = np.array([0, 17, 499])
    for kind in ("flat", "hnsw", "ivf"):
        index, _ = build_index(IndexParams(kind=kind, nlist=4, seed=0), x, ids, withhold=rows)
        assert index.ntotal == 497 and not np.isin(rows, indexed_ids(index)).any()
    with pytest.raises(InputError, match="withheld rows must lie in"):
        build_index(IndexParams(kind="flat"), x, ids, withhold=np.array([500]))


def test_small_collections_are_tuned_on_stored_vectors() -> None:
    from indexer.core.tuning import HELD_OUT_MIN_N, held_out_rows

    assert held_out_rows(HELD_OUT_MIN_N - 1) is None
    assert len(held_out_rows(HELD_OUT_MIN_N)) == HELD_OUT_MIN_N // 20
