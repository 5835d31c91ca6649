"""Queries during a graph's tail compaction, in one process: the slowest ones, with numpy's BLAS pool or one thread.

Loads a 1M HNSW index (``benchmarks/serve_million.py --kind hnsw`` builds one: ``--workdir``/ws-fresh/indexes/
served.faiss), gives it ``--changes`` growing vectors and as many deletion marks (the realistic synthetic rows the
service run adds), then, ``--runs`` times for each arm, folds them into a tail on a thread
(:func:`indexer.core.compaction.fold_tail`, :func:`indexer.core.index_io.save_segments` into a scratch folder,
:func:`indexer.core.compaction.rebase`, as the service's compaction does) while the main thread queries the
segmented index one query at a time. The arms alternate in the same process: ``pool``, BLAS as loaded (numpy's
OpenBLAS runs a thread per core), and ``one``, every BLAS limited to one thread
(:func:`indexer.api.limit_blas_threads`, what ``indexer serve`` does). Prints, per run, the compaction's phases,
the query p50 and the slowest queries meanwhile.

Usage: python benchmarks/tail_stalls.py --index /tmp/sm1m-hnsw/ws-fresh/indexes/served.faiss [--changes 50000]
       [--runs 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's indexer


def one_run(segmented, params: dict, queries: np.ndarray, scratch: Path) -> dict:
    from indexer.core.compaction import fold_tail, rebase
    from indexer.core.index_io import save_segments
    from indexer.core.memory import release_free_memory

    events: list[tuple[str, float]] = []
    done = threading.Event()

    def compact() -> None:
        events.append(("start", time.perf_counter()))
        tail, marks = fold_tail(segmented, params)
        events.append(("fold_tail", time.perf_counter()))
        save_segments(scratch / "served.faiss", tail, marks)
        events.append(("save", time.perf_counter()))
        rebase(segmented, segmented, segmented.sealed, None, tail=tail, marks=marks)
        release_free_memory()
        events.append(("rebase", time.perf_counter()))
        done.set()

    thread = threading.Thread(target=compact)
    latencies: list[tuple[float, float]] = []
    thread.start()
    i = 0
    while not done.is_set():
        started = time.perf_counter()
        segmented.search(queries[i % len(queries)][None, :], 10)
        latencies.append((started, time.perf_counter() - started))
        i += 1
    thread.join()
    base = events[0][1]
    slowest = sorted(latencies, key=lambda item: -item[1])[:5]
    return {"phases_s": {name: round(at - base, 3) for name, at in events[1:]}, "queries": len(latencies),
            "p50_ms": round(1e3 * statistics.median(d for _, d in latencies), 2),
            "over_50ms": sum(d > 0.05 for _, d in latencies),
            "slowest_ms": [[round(at - base, 3), round(d * 1e3, 1)] for at, d in slowest]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True)
    parser.add_argument("--changes", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    import faiss
    from threadpoolctl import threadpool_info, threadpool_limits

    from indexer.api import limit_blas_threads
    from indexer.bench.synthetic_bench import synthetic_data
    from indexer.core.files import write_json
    from indexer.core.index_io import load_index
    from indexer.core.segments import SegmentedIndex

    faiss.omp_set_num_threads(1)  # one query at a time, as one client sends them
    index, sidecar = load_index(args.index)
    n = int(index.ntotal)
    data = synthetic_data(n + args.changes, index.d, 300, 0, seed=0, data="realistic")
    segmented = SegmentedIndex(index)
    first = int(segmented.sealed_ids.max()) + 1
    segmented = segmented.added(np.arange(first, first + args.changes, dtype=np.int64), data.base[n:])
    gone = np.sort(np.random.default_rng(1).choice(segmented.sealed_ids, args.changes, replace=False))
    segmented, _ = segmented.removed(gone)
    pool = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]
    runs = []
    scratch = Path(tempfile.mkdtemp(prefix="tail-stalls-"))
    try:
        (scratch / "served.faiss").hardlink_to(args.index)
        shutil.copy(Path(args.index).with_suffix(".json"), scratch / "served.json")
        for run in range(args.runs):
            for arm in ("pool", "one"):
                with threadpool_limits(limits=None, user_api="blas"):  # BLAS as loaded again after the arm
                    if arm == "one":
                        limit_blas_threads(1)  # what indexer serve does
                    row = {"run": run + 1, "arm": arm, **one_run(segmented, sidecar["params"], data.queries,
                                                                 scratch)}
                runs.append(row)
                print(f"run {run + 1} {arm}: p50 {row['p50_ms']} ms, {row['over_50ms']} over 50 ms, slowest "
                      f"{row['slowest_ms'][0][1]} ms of {row['queries']}, phases {row['phases_s']}", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if args.json:  # the lines above are the figures; the file adds the slowest five of each run
        write_json(args.json, {"index": args.index, "n": n, "changes": args.changes, "blas_threads_as_loaded": pool,
                               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs": runs})
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
