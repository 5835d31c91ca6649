"""A serving process's BLAS: one thread per calling thread.

A query's own matrix products are small: one query against the growing segment's rows (tens of thousands before
a compaction folds them) or a page of re-ranked candidates. numpy's OpenBLAS (a pthreads build) splits even those
over its pool of threads, one per core, and its workers spin, then sleep, between calls. In a server that already
runs requests on several threads, and beside a compaction that keeps one core busy, that pool only gets in the
way: with a 1M HNSW graph folding 50,000 growing rows into its tail on one thread and one client querying on the
other, queries stalled for 104-110 ms at least three times in each of three runs, p50 5.8 ms; with one BLAS
thread, p50 2.9 ms and two runs of three had no query over 14 ms (``benchmarks/tail_stalls.py``,
docs/BENCHMARKS.md). FAISS's own OpenBLAS is an OpenMP build and follows FAISS's thread settings already.
"""

from __future__ import annotations


def limit_blas_threads(threads: int = 1) -> list[dict]:
    """Limit every BLAS library loaded in this process (numpy's, FAISS's) to ``threads`` threads, for the life of
    the process (call it once the libraries are loaded: after the indexes are opened); returns what each reports
    now (threadpoolctl's ``threadpool_info``: ``filepath``, ``num_threads``, ...)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(limits=int(threads), user_api="blas")
    return [info for info in threadpool_info() if info.get("user_api") == "blas"]
