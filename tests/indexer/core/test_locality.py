"""Graph indexes store neighbours near each other (indexer.core.locality), without changing answers or ids."""

from __future__ import annotations

import numpy as np

from indexer.core.build import build_index, stored_vectors
from indexer.core.factory import IndexParams
from indexer.core.locality import MIN_ROWS, locality_order
from indexer.core.search import search


def _label_runs(labels: np.ndarray) -> int:
    """How many times the label changes along ``labels`` (in storage order)."""
    return int((labels[1:] != labels[:-1]).sum())


def test_order_is_a_seeded_permutation_grouping_clusters(clustered) -> None:
    base, _, labels = clustered
    order = locality_order(base, seed=3)
    assert order.dtype == np.int64 and np.array_equal(np.sort(order), np.arange(len(base)))
    assert np.array_equal(order, locality_order(base, seed=3)), "deterministic for a seed"
    # 40 clusters in random order: about n changes of label; grouped: a few per cluster
    assert _label_runs(labels) > len(base) * 0.9
    assert _label_runs(labels[order]) < len(base) * 0.1
    assert np.array_equal(locality_order(base[: MIN_ROWS - 1]), np.arange(MIN_ROWS - 1)), "small: as given"


def test_hnsw_stores_clusters_together_and_answers_with_the_ids_given(clustered, queries) -> None:
    base, ids, labels = clustered
    label_of = dict(zip(ids.tolist(), labels.tolist()))
    for kind in ("hnsw", "hnsw-fp16"):
        index, _ = build_index(IndexParams(kind, hnsw_m=16), base, ids)
        held_ids, held = stored_vectors(index)
        assert _label_runs(np.array([label_of[i] for i in held_ids.tolist()])) < len(base) * 0.1, kind
        rows = np.searchsorted(ids, held_ids)
        assert np.allclose(held, base[rows], atol=1e-3), "each stored vector is still under its own id"
        _, found = search(index, base[:50], 1, efSearch=64)
        assert np.array_equal(found[:, 0], ids[:50]), kind


def test_flat_keeps_the_input_order(clustered) -> None:
    base, ids, _ = clustered
    index, _ = build_index(IndexParams("flat"), base, ids)
    held_ids, _ = stored_vectors(index)
    assert np.array_equal(held_ids, ids), "only graphs are reordered"
