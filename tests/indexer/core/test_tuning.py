from __future__ import annotations

import numpy as np

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
