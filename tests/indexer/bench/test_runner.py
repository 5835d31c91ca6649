from __future__ import annotations

import time

import numpy as np
import pytest

from indexer.bench.runner import BenchData, bytes_per_vector, faiss_direct_overhead, run_bench, sweep
from indexer.bench.synthetic_bench import cost_curve, run_synthetic_bench
from indexer.bench.timing import latency_ms, single_query_seconds, throughput_qps
from indexer.core.build import build_index
from indexer.core.factory import IndexParams
from indexer.core.search import exact_search
from indexer.core.settings import default_settings

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
    "efSearch",
    "our_overhead_pct",
    "speedup_vs_flat",
    "system",
    "qps_1t",
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
        assert row["qps"] > 0 and row["index_bytes"] > 0
        assert row["map_at_r"] is None, "synthetic runs do not search deep enough for MAP@R"
    flat, ivf, pca, hnsw = tiny_bench["results"]
    assert flat["ann_recall_at_k"] == 1.0 and flat["speedup_vs_flat"] == 1.0
    assert ivf["nprobe"] >= 1 and ivf["ann_recall_at_k"] >= 0.85 and ivf["efSearch"] is None
    assert hnsw["efSearch"] >= 5 and hnsw["nprobe"] is None
    assert pca["ann_recall_at_k"] < 1.0, "PCA to d/4 dims loses neighbours"
    assert set(tiny_bench["sweeps"]) == {"ivf", "hnsw"}
    assert {"value", "recall", "p50_ms", "p95_ms", "p99_ms", "qps_1t"} == set(tiny_bench["sweeps"]["ivf"][0])
    assert {row["system"] for row in tiny_bench["results"]} == {"indexer"}
    assert {"n", "dim", "lid", "relative_contrast"} <= set(tiny_bench["data"])
    assert tiny_bench["data"]["n"] == 3000 and tiny_bench["data"]["dim"] == 16


def test_catalog_style_queries_exclude_themselves_and_label_metrics_match_brute_force(clustered) -> None:
    """Stored vectors as queries: their own id never counts, and P@1 / MAP@R equal a numpy calculation."""
    from indexer.core.metrics import map_at_r, precision_at_1, relevant_counts

    base, ids, labels = clustered
    base, ids, labels = base[:600], ids[:600], labels[:600]
    data = BenchData(base=base, base_ids=ids, queries=base[:100], query_ids=ids[:100],
                     base_labels=labels, query_labels=labels[:100])
    report = run_bench(data, ["flat"], k=5, n_latency=10, overhead_repeats=1, progress=False)
    flat = report["results"][0]
    scores = base[:100] @ base.T
    scores[np.arange(100), np.arange(100)] = -np.inf  # the query itself
    order = np.argsort(-scores, axis=1, kind="stable")
    relevant = relevant_counts(labels[:100], labels)
    neighbour_labels = labels[order]
    assert flat["p_at_1"] == pytest.approx(precision_at_1(labels[:100], neighbour_labels))
    assert flat["map_at_r"] == pytest.approx(map_at_r(labels[:100], neighbour_labels, relevant), abs=1e-9)
    assert flat["ann_recall_at_k"] == 1.0 and flat["map_at_r_change"] == 0.0


def test_unknown_bench_kind_is_refused(clustered) -> None:
    from indexer.core.errors import InputError

    base, ids, _ = clustered
    with pytest.raises(InputError, match=r"cannot bench index kind\(s\) 'raw'"):
        run_bench(BenchData(base=base[:100], base_ids=ids[:100], queries=base[:5]), ["raw"], progress=False)


def test_sweep_recall_rises_and_index_is_untouched(clustered, queries) -> None:
    base, ids, _ = clustered
    index, _ = build_index(IndexParams("ivf", nlist=16, nprobe=2), base, ids)
    exact = exact_search(base, ids, queries, 15)
    rows = sweep(index, queries, exact, 10, [1, 4, 16], n_latency=10)
    assert [r["value"] for r in rows] == [1, 4, 16]
    assert rows[0]["recall"] < rows[1]["recall"] <= rows[2]["recall"] == 1.0
    assert default_settings(index) == {"nprobe": 2}


def test_timing_measures_the_call_and_restores_threads(clustered, queries) -> None:
    import faiss

    base, ids, _ = clustered
    index, _ = build_index(IndexParams("flat"), base, ids)
    threads = faiss.omp_get_max_threads()
    lat = latency_ms(index, queries[:10], 5, n_repeats=2)
    assert set(lat) == {"p50", "p95", "p99", "mean"}
    assert faiss.omp_get_max_threads() == threads

    def slow_search(ix, q, k):  # a search that takes at least 2 ms: every sample must show it
        time.sleep(0.002)
        return ix.search(q, k)

    seconds = single_query_seconds(index, queries[:6], 5, n_repeats=2, search_fn=slow_search)
    assert seconds.shape == (12,) and seconds.min() >= 0.002
    assert latency_ms(index, queries[:6], 5, search_fn=slow_search)["p50"] >= 2.0
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
    exact = exact_search(base, ids, base[:20], 15, exclude_self_ids=ids[:20])
    rows = sweep(index, base[:20], exact, 10, [16], n_latency=5, query_ids=ids[:20])
    assert rows[0]["recall"] == 1.0


def test_at_target_takes_the_cheapest_swept_setting_reaching_the_recall():
    from indexer.bench.sweeps import at_target

    rows = [{"kind": "ivf", "system": "indexer", "ann_recall_at_k": 0.93, "search_ms_p50": 0.1, "search_ms_p99": 0.2,
             "qps_1t": 9000.0},
            {"kind": "flat", "system": "indexer", "ann_recall_at_k": 1.0, "search_ms_p50": 5.0, "search_ms_p99": 6.0,
             "qps_1t": 200.0},
            {"kind": "pca", "system": "indexer", "ann_recall_at_k": 0.4, "search_ms_p50": 1.0, "search_ms_p99": 1.0,
             "qps_1t": 1000.0}]
    sweeps = {"ivf": [{"value": 4, "recall": 0.90, "p50_ms": 0.08, "p99_ms": 0.1, "qps_1t": 1e4},
                      {"value": 8, "recall": 0.96, "p50_ms": 0.20, "p99_ms": 0.3, "qps_1t": 5e3},
                      {"value": 16, "recall": 0.99, "p50_ms": 0.15, "p99_ms": 0.4, "qps_1t": 6e3}]}
    found = {row["kind"]: row for row in at_target(rows, sweeps, 0.95)}
    assert found["ivf"]["value"] == 8 and found["ivf"]["p50_ms"] == 0.20, "the smallest value, not the luckiest time"
    assert found["flat"]["recall"] == 1.0 and found["flat"]["value"] is None
    assert found["pca"]["p50_ms"] is None


def test_graph_sweep_tries_every_integer_where_the_target_is_reached(clustered) -> None:
    """Ours and the peers sweep the same graph grid, one step at a time up to 64: the old grid jumped from
    32 to 40, so the at-target row took efSearch 40 where 34 sufficed and compared the grid, not the systems."""
    from indexer.bench.grids import GRAPH_SWEEP
    from indexer.bench.sweeps import default_sweep_values

    assert list(GRAPH_SWEEP) == sorted(set(GRAPH_SWEEP)) and GRAPH_SWEEP[-1] == 512
    base, ids, _ = clustered
    index, _ = build_index(IndexParams("hnsw", hnsw_m=8), base, ids)
    values = default_sweep_values(index, 10)
    assert values[: 64 - 10 + 1] == list(range(10, 65))
    assert default_sweep_values(index, 20)[0] == 20, "below k FAISS searches k candidates anyway"


def test_at_target_settings_are_timed_again_in_interleaved_rounds() -> None:
    from indexer.bench.sweeps import retime_at_target

    calls = []

    def timer(name, ms):
        def time_at(value):
            calls.append((name, value))
            return np.full(30, ms / 1e3)
        return time_at

    rows = [{"kind": "hnsw", "system": "indexer", "value": 34, "recall": 0.95, "p50_ms": 0.30, "p99_ms": 1.0,
             "qps_1t": 1.0},
            {"kind": "hnswlib", "system": "peer", "value": 38, "recall": 0.95, "p50_ms": 0.09, "p99_ms": 1.0,
             "qps_1t": 1.0},
            {"kind": "flat", "system": "indexer", "value": None, "recall": 1.0, "p50_ms": 5.0, "p99_ms": 6.0,
             "qps_1t": 200.0}]
    retime_at_target(rows, {"hnsw": timer("hnsw", 0.1), "hnswlib": timer("hnswlib", 0.2)}, rounds=3, seed=0)
    assert sorted(calls) == [("hnsw", 34)] * 3 + [("hnswlib", 38)] * 3, "each at its own at-target setting"
    assert all({calls[2 * r][0], calls[2 * r + 1][0]} == {"hnsw", "hnswlib"} for r in range(3)), "interleaved"
    hnsw, peer, flat = rows
    assert hnsw["p50_ms"] == pytest.approx(0.1) and peer["p50_ms"] == pytest.approx(0.2)
    assert hnsw["sweep_p50_ms"] == 0.30 and hnsw["rounds"] == 3 and len(hnsw["p50_ms_rounds"]) == 3
    assert flat["p50_ms"] == 5.0 and "rounds" not in flat, "exact kinds keep their figure"


def test_bench_times_its_at_target_rows_in_rounds(clustered, queries) -> None:
    base, ids, _ = clustered
    data = BenchData(base=base[:1500], base_ids=ids[:1500], queries=queries[:20])
    report = run_bench(data, ["hnsw"], k=5, progress=False, n_latency=10, at_target_rounds=2)
    (row,) = report["at_target"]
    assert row["rounds"] == 2 and len(row["p50_ms_rounds"]) == 2 and row["p50_ms"] > 0
    (row,) = run_bench(data, ["hnsw"], k=5, progress=False, n_latency=10, at_target_rounds=0)["at_target"]
    assert "rounds" not in row
