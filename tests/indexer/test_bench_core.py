from __future__ import annotations

import numpy as np
import pytest

from indexer.bench_core import (
    bytes_per_vector,
    cost_curve,
    faiss_direct_overhead,
    run_synthetic_bench,
    sweep,
)
from indexer.factory import IndexParams, build_index, get_search_params
from indexer.search import exact_search
from indexer.timing import latency_ms, throughput_qps

ROW_KEYS = {
    "kind",
    "ann_recall_at_k",
    "search_ms_p50",
    "search_ms_p95",
    "search_ms_p99",
    "qps",
    "build_s",
    "bytes_per_vector",
    "index_bytes",
    "factory",
    "nprobe",
    "ef_search",
}


@pytest.fixture(scope="module")
def tiny_bench() -> dict:
    return run_synthetic_bench(
        3000, 16, ["flat", "ivf", "pca", "hnsw"], k=5, n_queries=40, seed=1, progress=False, n_latency=20
    )


def test_bench_has_every_key(tiny_bench: dict) -> None:
    assert {"n", "d", "kinds", "k", "seed", "target_recall", "faiss_version"} <= set(tiny_bench["params"])
    assert [r["kind"] for r in tiny_bench["results"]] == ["flat", "ivf", "pca", "hnsw"]
    for row in tiny_bench["results"]:
        assert ROW_KEYS <= set(row), ROW_KEYS - set(row)
        assert 0.0 <= row["ann_recall_at_k"] <= 1.0
        assert row["search_ms_p50"] <= row["search_ms_p95"] <= row["search_ms_p99"]
        assert row["qps"] > 0 and row["index_bytes"] > 0
    flat, ivf = tiny_bench["results"][:2]
    assert flat["ann_recall_at_k"] == 1.0 and flat["speedup_vs_flat"] == 1.0
    assert ivf["nprobe"] >= 1 and ivf["ann_recall_at_k"] >= 0.85
    assert set(tiny_bench["sweeps"]) == {"ivf", "hnsw"}
    assert {"value", "recall", "p50_ms"} == set(tiny_bench["sweeps"]["ivf"][0])


def test_sweep_recall_rises_and_setting_is_restored(clustered, queries) -> None:
    base, ids, _ = clustered
    index, _ = build_index(IndexParams("ivf", nlist=16, nprobe=2), base, ids)
    exact_scores, exact_ids = exact_search(base, ids, queries, 15)
    rows = sweep(index, None, queries, exact_ids, 10, [1, 4, 16], exact_scores=exact_scores, n_latency=10)
    assert [r["value"] for r in rows] == [1, 4, 16]
    assert rows[0]["recall"] <= rows[1]["recall"] <= rows[2]["recall"] == 1.0
    assert get_search_params(index) == {"nprobe": 2}


def test_timing_helpers_restore_threads(clustered, queries) -> None:
    import faiss

    base, ids, _ = clustered
    index, _ = build_index(IndexParams("flat"), base, ids)
    threads = faiss.omp_get_max_threads()
    lat = latency_ms(index, queries[:10], 5, n_repeats=2)
    assert set(lat) == {"p50", "p95", "p99", "mean"} and lat["p50"] > 0
    assert faiss.omp_get_max_threads() == threads
    assert throughput_qps(index, queries, 5) > 0
    assert bytes_per_vector(index) >= 4 * base.shape[1] + 8  # codes plus an int64 id
    over = faiss_direct_overhead(index, queries[:10], 5, n_repeats=1)
    assert {"ours_p50_ms", "direct_p50_ms", "overhead_pct", "overhead_us_per_query"} == set(over)


def test_cost_curve_rows() -> None:
    rows = cost_curve([1000, 2000], 8, ["flat", "ivf"], k=5, n_queries=10, progress=False)
    assert [(r["n"], r["kind"]) for r in rows] == [
        (1000, "flat"),
        (1000, "ivf"),
        (2000, "flat"),
        (2000, "ivf"),
    ]
    assert all(np.isfinite(r["search_ms_p50"]) for r in rows)


def test_sweep_drops_self_for_indexed_queries(clustered) -> None:
    base, ids, _ = clustered
    index, _ = build_index(IndexParams("ivf", nlist=16), base, ids)
    exact_scores, exact_ids = exact_search(base, ids, base[:20], 15, exclude_self_ids=ids[:20])
    rows = sweep(
        index,
        None,
        base[:20],
        exact_ids,
        10,
        [16],
        exact_scores=exact_scores,
        n_latency=5,
        query_ids=ids[:20],
    )
    assert rows[0]["recall"] == 1.0
