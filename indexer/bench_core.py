"""Numpy-level benchmark of index kinds on seeded synthetic clustered vectors.

Ground truth is exact inner-product search for a few hundred held-out queries;
k-means trains on a sub-sample (see :mod:`indexer.factory`), so N = 1,000,000 at
d = 128 runs in minutes on two cores.
"""

from __future__ import annotations

import platform
import time
from typing import Any

import numpy as np

from indexer.factory import (
    IndexParams,
    build_index,
    find_hnsw,
    find_ivf,
    get_search_params,
    set_search_params,
)
from indexer.fidelity import ann_recall_at_k
from indexer.metrics import precision_at_1, precision_at_k
from indexer.search import drop_self, exact_search, search
from indexer.synthetic import DEFAULT_SPREAD, default_n_clusters, make_clustered, make_queries
from indexer.timing import latency_ms, single_query_seconds, throughput_qps
from indexer.tuning import tune_search_param

EXTRA_EXACT = 10  # exact neighbours beyond k, so ties past rank k are visible


def index_bytes(index: Any) -> int:
    """Size of the serialised index in bytes."""
    import faiss

    return int(faiss.serialize_index(index).size)


def bytes_per_vector(index: Any) -> float:
    """Serialised index size / ntotal (includes ids, centroids, graph links)."""
    return index_bytes(index) / max(1, index.ntotal)


def default_sweep_values(index: Any, k: int) -> list[int]:
    """Powers of two for nprobe (up to min(nlist, 512)), efSearch from max(16, k) to 512."""
    ivf = find_ivf(index)
    if ivf is not None:
        return [v for v in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) if v <= ivf.nlist]
    if find_hnsw(index) is not None:
        return [v for v in (16, 32, 64, 128, 256, 512) if v >= k]
    return []


def sweep(
    index: Any,
    base: np.ndarray | None,
    queries: np.ndarray,
    exact_ids: np.ndarray | None,
    k: int,
    values: list[int] | None = None,
    *,
    exact_scores: np.ndarray | None = None,
    n_latency: int = 100,
    query_ids: np.ndarray | None = None,
) -> list[dict[str, float]]:
    """Recall@k and single-query p50 (ms) at each nprobe / efSearch value.

    queries (q, d) float32; exact_ids (q, >= k) int64 — computed from ``base``
    (ids 0..n-1) when None. When the queries are indexed vectors, pass their
    ``query_ids`` (q,) so each query's own id is dropped from the results, as it
    should be from ``exact_ids``. Returns [{value, recall, p50_ms}]; the index's own
    setting is left unchanged.
    """
    if exact_ids is None:
        exact_scores, exact_ids = exact_search(base, np.arange(len(base)), queries, k + EXTRA_EXACT)
    name = "nprobe" if find_ivf(index) is not None else "ef_search"
    original = get_search_params(index)
    rows = []
    try:
        for value in values if values is not None else default_sweep_values(index, k):
            # Set once, then time plain searches: a per-call override would time its own overhead.
            set_search_params(index, **{name: value})
            if query_ids is None:
                _, found = search(index, queries, k)
            else:
                scores, found = search(index, queries, k + 1)
                _, found = drop_self(scores, found, query_ids, k)
            recall = ann_recall_at_k(found, exact_ids, k, exact_scores=exact_scores)
            lat = latency_ms(index, queries[:n_latency], k)
            rows.append({"value": int(value), "recall": recall, "p50_ms": lat["p50"]})
    finally:
        set_search_params(index, nprobe=original.get("nprobe"), ef_search=original.get("efSearch"))
    return rows


def faiss_direct_overhead(index: Any, queries: np.ndarray, k: int, n_repeats: int = 3) -> dict[str, float]:
    """Single-query p50 of our ``search()`` vs ``index.search`` directly, interleaved, one thread."""
    x = np.ascontiguousarray(queries, dtype=np.float32)
    ours, direct = [], []
    for _ in range(n_repeats):  # interleave so drift from other load hits both equally
        direct.append(single_query_seconds(index, x, k, search_fn=lambda ix, q, kk: ix.search(q, kk)))
        ours.append(single_query_seconds(index, x, k))
    ours_ms = float(np.median(np.concatenate(ours)) * 1e3)
    direct_ms = float(np.median(np.concatenate(direct)) * 1e3)
    return {
        "ours_p50_ms": ours_ms,
        "direct_p50_ms": direct_ms,
        "overhead_us_per_query": (ours_ms - direct_ms) * 1e3,
        "overhead_pct": 100.0 * (ours_ms - direct_ms) / direct_ms,
    }


def bench_kind(
    params: IndexParams,
    base: np.ndarray,
    queries: np.ndarray,
    exact: tuple[np.ndarray, np.ndarray],
    k: int,
    target_recall: float,
    n_latency: int = 200,
    n_tune_queries: int = 200,
    labels: tuple[np.ndarray, np.ndarray] | None = None,
    with_sweep: bool = True,
    tune_queries: np.ndarray | None = None,
) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """Build one index over base (ids 0..n-1), tune it, and measure it. Returns (row, sweep).

    Tuning uses ``tune_queries`` (held out, distinct from the measured ``queries``)
    or, without them, sampled base vectors.
    """
    exact_scores, exact_ids = exact
    ids = np.arange(base.shape[0], dtype=np.int64)
    index, info = build_index(params, base, ids)
    tuned = tune_search_param(
        index, base, ids, k, target_recall, n_queries=n_tune_queries, seed=params.seed, queries=tune_queries
    )
    _, found = search(index, queries, k)
    lat = latency_ms(index, queries[:n_latency], k)
    size = index_bytes(index)
    settings = get_search_params(index)
    row: dict[str, Any] = {
        "kind": params.kind,
        "factory": info.factory,
        "n": info.n,
        "d": info.d,
        "nlist": info.nlist,
        "nprobe": settings.get("nprobe"),
        "ef_search": settings.get("efSearch"),
        "tune_reached_target": None if tuned is None else tuned.reached,
        "ann_recall_at_k": ann_recall_at_k(found, exact_ids, k, exact_scores=exact_scores),
        "search_ms_p50": lat["p50"],
        "search_ms_p95": lat["p95"],
        "search_ms_p99": lat["p99"],
        "qps": throughput_qps(index, queries, k),
        "build_s": info.build_s,
        "train_s": info.train_s,
        "add_s": info.add_s,
        "train_n": info.train_n,
        "bytes_per_vector": size / max(1, index.ntotal),
        "index_bytes": size,
        "our_overhead_pct": faiss_direct_overhead(index, queries[:100], k, n_repeats=1)["overhead_pct"],
    }
    if labels is not None:
        base_labels, query_labels = labels
        neighbour_labels = np.where(found >= 0, base_labels[np.maximum(found, 0)], -1)
        row["label_precision_at_1"] = precision_at_1(query_labels, neighbour_labels)
        row["label_precision_at_k"] = precision_at_k(query_labels, neighbour_labels, k)
    curve = (
        sweep(index, None, queries, exact_ids, k, exact_scores=exact_scores, n_latency=min(n_latency, 100))
        if with_sweep
        else []
    )
    return row, curve


def bench_params(kind: str, d: int, seed: int) -> IndexParams:
    """Default params for ``kind``, with PCA to at most d/4 dims (32 at d = 128)."""
    return IndexParams(kind, pca_dim=max(1, min(IndexParams.pca_dim, d // 4)), seed=seed)


def _progress(items: list[str], enabled: bool, desc: str) -> Any:
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="kind")


def run_synthetic_bench(
    n: int,
    d: int,
    kinds: list[str],
    k: int = 10,
    n_queries: int = 300,
    target_recall: float = 0.95,
    seed: int = 0,
    progress: bool = True,
    n_clusters: int | None = None,
    n_latency: int = 200,
    spread: float = DEFAULT_SPREAD,
    n_tune_queries: int = 200,
    intrinsic_dim: int | None = None,
) -> dict[str, Any]:
    """Benchmark each kind on n clustered vectors of d dims with held-out queries.

    Returns {"params": {...}, "results": [per-kind row], "sweeps": {kind: [...]},
    "ground_truth_s": …}. Each row has kind, factory, ann_recall_at_k,
    search_ms_p50/p95/p99 (one query at a time, one thread), qps (batch, all
    threads), build_s, bytes_per_vector, index_bytes, nprobe / ef_search (tuned to
    ``target_recall`` on sampled base vectors), and ``speedup_vs_flat`` when flat ran.
    ``spread`` (cluster noise; larger is harder) and ``intrinsic_dim`` (None:
    isotropic) shape the data, see :mod:`indexer.synthetic`.
    """
    import faiss

    t_start = time.perf_counter()
    n_clusters = default_n_clusters(n) if n_clusters is None else n_clusters
    base, base_labels = make_clustered(n, d, n_clusters, seed, spread, intrinsic_dim)
    # One draw split in two: measured queries, and held-out queries to tune on.
    queries, query_labels = make_queries(
        n_queries + n_tune_queries, d, n_clusters, seed, spread, intrinsic_dim
    )
    tune_queries, queries, query_labels = queries[n_queries:], queries[:n_queries], query_labels[:n_queries]
    t0 = time.perf_counter()
    exact = exact_search(base, np.arange(n), queries, k + EXTRA_EXACT)
    gt_s = time.perf_counter() - t0
    results, sweeps = [], {}
    iterator = _progress(list(kinds), progress, f"bench n={n:,} d={d}")
    for kind in iterator:
        if progress:
            iterator.set_postfix_str(kind)
        row, curve = bench_kind(
            bench_params(kind, d, seed),
            base,
            queries,
            exact,
            k,
            target_recall,
            n_latency=n_latency,
            n_tune_queries=n_tune_queries,
            labels=(base_labels, query_labels),
            tune_queries=tune_queries,
        )
        results.append(row)
        if curve:
            sweeps[kind] = curve
    flat = next((r for r in results if r["kind"] == "flat"), None)
    for row in results:
        row["speedup_vs_flat"] = flat["search_ms_p50"] / row["search_ms_p50"] if flat else None
    return {
        "params": {
            "n": n,
            "d": d,
            "kinds": list(kinds),
            "k": k,
            "n_queries": n_queries,
            "target_recall": target_recall,
            "seed": seed,
            "n_clusters": n_clusters,
            "spread": spread,
            "intrinsic_dim": intrinsic_dim,
            "n_latency": n_latency,
            "n_tune_queries": n_tune_queries,
            "faiss_version": faiss.__version__,
            "faiss_threads": faiss.omp_get_max_threads(),
            "machine": platform.machine(),
        },
        "results": results,
        "sweeps": sweeps,
        "ground_truth_s": gt_s,
        "total_s": time.perf_counter() - t_start,
    }


def cost_curve(
    ns: list[int],
    d: int,
    kinds: list[str],
    k: int = 10,
    n_queries: int = 200,
    target_recall: float = 0.95,
    seed: int = 0,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """N vs tuned single-query latency per kind: [{n, kind, search_ms_p50, ann_recall_at_k, …}]."""
    rows = []
    for n in ns:
        n_clusters = default_n_clusters(n)
        base, _ = make_clustered(n, d, n_clusters, seed)
        drawn, _ = make_queries(2 * n_queries, d, n_clusters, seed)
        queries, tune_queries = drawn[:n_queries], drawn[n_queries:]
        exact = exact_search(base, np.arange(n), queries, k + EXTRA_EXACT)
        for kind in _progress(list(kinds), progress, f"cost n={n:,}"):
            row, _ = bench_kind(
                bench_params(kind, d, seed),
                base,
                queries,
                exact,
                k,
                target_recall,
                n_latency=n_queries,
                n_tune_queries=n_queries,
                with_sweep=False,
                tune_queries=tune_queries,
            )
            rows.append(row)
    return rows
