"""The bench on seeded synthetic clustered vectors: one run, and the cost curve over N.

Ground truth is exact inner-product search for a few hundred held-out queries; k-means
trains on a sub-sample (see :mod:`indexer.core.build`), so N = 1,000,000 at d = 128 runs in
minutes on two cores.
"""

from __future__ import annotations

import platform
import time
from typing import Any

import numpy as np

from indexer.bench.runner import BenchData, run_bench
from indexer.bench.synthetic import DEFAULT_SPREAD, default_n_clusters, make_clustered, make_queries
from indexer.core.errors import InputError
from indexer.core.files import atomic_write

EXPORT_GT_K = 100


def export(data: BenchData, folder: str) -> None:
    """Write base.npy (n, d) float32, queries.npy (q, d) float32 and gt.npy (q, 100) int64 (exact
    inner-product top 100, row numbers of base.npy = its ids) for checking with another tool."""
    from pathlib import Path

    from indexer.core.search import exact_search

    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{folder}: cannot create the folder ({exc.strerror or exc})") from None
    _, gt = exact_search(data.base, data.base_ids, data.queries, min(EXPORT_GT_K, len(data.base_ids)))
    for name, array in (("base", data.base), ("queries", data.queries), ("gt", gt)):
        with atomic_write(out / f"{name}.npy") as handle:
            np.save(handle, array)


DATA_KINDS = ("realistic", "blobs")
DEFAULT_DATA = "realistic"


def synthetic_data(
    n: int,
    d: int,
    n_queries: int,
    n_tune_queries: int,
    seed: int = 0,
    n_clusters: int | None = None,
    spread: float | None = None,
    intrinsic_dim: int | None = None,
    data: str = "blobs",
) -> BenchData:
    """n base vectors with ids 0..n-1, and held-out measured and tuning queries from one draw.

    ``data``: "realistic" (:mod:`indexer.bench.realistic`, shaped like trained embeddings) or
    "blobs" (isotropic clusters, :mod:`indexer.bench.synthetic`).
    """
    if data not in DATA_KINDS:
        raise InputError(f"--data must be one of {', '.join(DATA_KINDS)}; got {data!r}")
    if data == "realistic":
        from indexer.bench import realistic

        n_clusters = realistic.default_n_clusters(n) if n_clusters is None else n_clusters
        spread = realistic.DEFAULT_SPREAD if spread is None else spread
        latent = intrinsic_dim  # None: the fitted default, at most d
        base, base_labels = realistic.make_realistic(n, d, n_clusters, seed, latent, spread)
        drawn, drawn_labels = realistic.make_realistic_queries(n_queries + n_tune_queries, d, n_clusters, seed,
                                                               latent, spread)
    else:
        n_clusters = default_n_clusters(n) if n_clusters is None else n_clusters
        spread = DEFAULT_SPREAD if spread is None else spread
        base, base_labels = make_clustered(n, d, n_clusters, seed, spread, intrinsic_dim)
        drawn, drawn_labels = make_queries(n_queries + n_tune_queries, d, n_clusters, seed, spread, intrinsic_dim)
    return BenchData(
        base=base, base_ids=np.arange(n, dtype=np.int64), queries=drawn[:n_queries],
        tune_queries=drawn[n_queries:], base_labels=base_labels, query_labels=drawn_labels[:n_queries],
        deep_labels=False,  # a cluster holds ~√n vectors: MAP@R would search that deep for every kind
    )


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
    spread: float | None = None,
    n_tune_queries: int = 200,
    intrinsic_dim: int | None = None,
    data: str = DEFAULT_DATA,
    peers: tuple[str, ...] | list[str] = (),
    export_vectors: str | None = None,
) -> dict[str, Any]:
    """Benchmark each kind on n clustered vectors of d dims with held-out queries.

    Returns {"params": {...}, "results": [per-kind row], "sweeps": {kind: [...]},
    "ground_truth_s", "total_s"}; rows as :func:`indexer.bench.runner.run_bench` makes them
    (label metrics against the cluster labels, MAP@R left out). ``spread`` (cluster noise;
    larger is harder) and ``intrinsic_dim`` (None: isotropic) shape the data, see
    :mod:`indexer.bench.synthetic`.
    """
    import faiss

    t_start = time.perf_counter()
    vectors = synthetic_data(n, d, n_queries, n_tune_queries, seed, n_clusters, spread, intrinsic_dim, data)
    if export_vectors:
        export(vectors, export_vectors)
    report = run_bench(
        vectors, kinds, k=k, target_recall=target_recall, seed=seed, n_latency=n_latency,
        n_tune_queries=n_tune_queries, overhead_repeats=1, progress=progress, desc=f"bench n={n:,} d={d}",
        peers=peers,
    )
    report["params"] = {
        "mode": "synthetic", "data": data, "peers": list(peers), "n": n, "d": d, "kinds": list(kinds), "k": k,
        "n_queries": n_queries,
        "target_recall": target_recall, "seed": seed, "n_clusters": n_clusters, "spread": spread,
        "intrinsic_dim": intrinsic_dim, "n_latency": n_latency, "n_tune_queries": n_tune_queries,
        "faiss_version": faiss.__version__, "faiss_threads": faiss.omp_get_max_threads(),
        "machine": platform.machine(),
    }
    report["total_s"] = time.perf_counter() - t_start
    return report


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
        data = synthetic_data(n, d, n_queries, n_queries, seed)
        report = run_bench(
            data, kinds, k=k, target_recall=target_recall, seed=seed, n_latency=n_queries,
            n_tune_queries=n_queries, overhead_repeats=1, with_sweep=False, progress=progress,
            desc=f"cost n={n:,}",
        )
        rows += report["results"]
    return rows
