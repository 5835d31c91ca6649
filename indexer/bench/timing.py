"""Wall-clock timing of searches: single-query latency and batch throughput."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from indexer.core.arrays import as_vectors, check_k
from indexer.core.search import search

SearchFn = Callable[[Any, np.ndarray, int], Any]


@contextmanager
def faiss_threads(n: int) -> Iterator[None]:
    """Run the block with FAISS's OpenMP pool at ``n`` threads, restoring it afterwards."""
    import faiss

    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def _default_search(index: Any, query: np.ndarray, k: int, params: Any = None) -> Any:
    return search(index, query, k, params=params)


def percentiles_ms(seconds: np.ndarray) -> dict[str, float]:
    """p50/p95/p99 and mean of durations given in seconds, in milliseconds."""
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "mean": float(ms.mean())}


def single_query_seconds(
    index: Any,
    queries: np.ndarray,
    k: int,
    n_repeats: int = 1,
    search_fn: SearchFn | None = None,
    params: Any = None,
) -> np.ndarray:
    """(n_repeats * q,) float64 seconds, one query per call, on one thread.

    ``params``: per-call FAISS search parameters for the default search function.
    """
    x = as_vectors(queries, index.d, name="query vectors")
    k = check_k(k)
    fn = search_fn or functools.partial(_default_search, params=params)
    rows = [x[i : i + 1] for i in range(x.shape[0])]
    out = np.empty(n_repeats * len(rows))
    with faiss_threads(1):
        fn(index, rows[0], k)  # warm-up: page in lists/codes before timing
        j = 0
        for _ in range(n_repeats):
            for row in rows:
                t0 = time.perf_counter()
                fn(index, row, k)
                out[j] = time.perf_counter() - t0
                j += 1
    return out


def latency_ms(
    index: Any,
    queries: np.ndarray,
    k: int,
    n_repeats: int = 1,
    search_fn: SearchFn | None = None,
    params: Any = None,
) -> dict[str, float]:
    """Single-query latency percentiles {p50, p95, p99, mean} in ms, one FAISS thread.

    queries: (q, d) float32. ``search_fn(index, (1, d) query, k)`` defaults to
    :func:`indexer.core.search.search`.
    """
    return percentiles_ms(single_query_seconds(index, queries, k, n_repeats, search_fn, params))


def throughput_qps(index: Any, queries: np.ndarray, k: int, n_repeats: int = 1) -> float:
    """Queries per second for one batch search of all queries (q, d) float32, all threads."""
    x = as_vectors(queries, index.d, name="query vectors")
    search(index, x[:1], k)  # warm-up
    best = np.inf
    for _ in range(max(1, n_repeats)):
        t0 = time.perf_counter()
        search(index, x, k)
        best = min(best, time.perf_counter() - t0)
    return float(x.shape[0] / best)


class IndexTimer:
    """(q,) seconds of one-query searches of ``index`` at a knob setting, one thread (as the sweep times)."""

    def __init__(self, index: Any, queries: np.ndarray, k: int) -> None:
        self.index, self.queries, self.k = index, queries, k

    def __call__(self, value: int) -> np.ndarray:
        from indexer.core.settings import knob_of, search_parameters

        params = search_parameters(self.index, **{knob_of(self.index): int(value)})
        return single_query_seconds(self.index, self.queries, self.k, params=params)

    def close(self) -> None:
        self.index = None
