"""A serving process's runtime settings, once its indexes are loaded: one BLAS thread per calling thread, and the
objects of start-up left out of the garbage collector's full passes.

**BLAS.**
A query's own matrix products are small: one query against the growing segment's rows (tens of thousands before
a compaction folds them) or a page of re-ranked candidates. numpy's OpenBLAS (a pthreads build) splits even those
over its pool of threads, one per core, and its workers spin, then sleep, between calls. In a server that already
runs requests on several threads, and beside a compaction that keeps one core busy, that pool only gets in the
way: with a 1M HNSW graph folding 50,000 growing rows into its tail on one thread and one client querying on the
other, the query p50 was 5.7-5.9 ms and one run of three had queries stalled for 102-103 ms; with one BLAS
thread, p50 2.6-2.9 ms and no query over 12.1 ms in three runs (``benchmarks/tail_stalls.py``, both arms
alternating in one process; docs/BENCHMARKS.md). FAISS's own OpenBLAS is an OpenMP build and follows FAISS's thread settings already.

**The collector.** A loaded 1M service holds about 80,000 Python objects (modules, the API's objects, FastAPI's);
a full collection walks them all: 41-53 ms on this machine with nothing else running, holding the GIL, so every
request in flight waits. Python runs one whenever enough new objects have survived (a stream of writes does
that). ``gc.freeze()`` after start-up moves them to a generation no collection visits: a full collection then
took 0.0 ms (``gc.collect(2)``, same process). Objects created later are collected as before.
"""

from __future__ import annotations


def limit_blas_threads(threads: int = 1) -> list[dict]:
    """Limit every BLAS library loaded in this process (numpy's, FAISS's) to ``threads`` threads, for the life of
    the process (call it once the libraries are loaded: after the indexes are opened); returns what each reports
    now (threadpoolctl's ``threadpool_info``: ``filepath``, ``num_threads``, ...)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(limits=int(threads), user_api="blas")
    return [info for info in threadpool_info() if info.get("user_api") == "blas"]


def freeze_loaded_objects() -> int:
    """Collect once, then move every object alive now out of the collector's reach (``gc.freeze()``): later full
    collections only walk what was created since. Call it once start-up is done; returns how many were frozen."""
    import gc

    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
