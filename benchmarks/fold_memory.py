"""The in-place fold's transient memory at a million (one process, no service): what compaction adds on top of
the loaded index and its pending changes.

Loads a saved IVF index (``--index``, e.g. the ``served.faiss`` that ``benchmarks/serve_million.py`` builds), adds
``--changes`` growing vectors in batches of 1,000 and marks as many sealed ids deleted (plus 300 of the growing ones,
as a service's writer leaves them), then runs :func:`indexer.core.compaction.fold_in_place` while a thread samples
VmRSS every millisecond; VmHWM is reset before the fold (``/proc/self/clear_refs``), so its rise is the fold's own.
Then the folded index is saved (:func:`indexer.core.index_io.save_index`, into ``--save-dir``), its own VmHWM rise
measured the same way. ``--queries Q.npy``: one thread searches those vectors (k 10) over and over while the fold
and the save run, as a service's clients do.

Usage: python benchmarks/fold_memory.py --index /tmp/sm1m/ws-fresh/indexes/served.faiss [--changes 50000]
       [--save-dir /tmp/fold-save] [--queries queries.npy]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def memory_mb() -> dict[str, int]:
    status = Path("/proc/self/status").read_text()
    return {key: int(re.search(key + r":\s+(\d+)", status).group(1)) // 1024 for key in ("VmRSS", "RssAnon", "VmHWM")}


def measured(step, in_thread: bool = False) -> dict:
    """Run ``step()`` with VmHWM reset first and VmRSS sampled every millisecond: its seconds and transient MiB."""
    release_free_memory()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = memory_mb()
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], memory_mb()["VmRSS"])
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.perf_counter()
    if in_thread:
        worker = threading.Thread(target=step)
        worker.start()
        worker.join()
    else:
        step()
    seconds = round(time.perf_counter() - started, 2)
    done.set()
    sampler.join()
    after = memory_mb()
    return {"seconds": seconds, "before": before, "after": after, "sampled_peak_rss_mb": peak[0],
            "transient_mb": after["VmHWM"] - before["VmRSS"]}


def release_free_memory() -> None:
    from indexer.core.memory import release_free_memory as release

    release()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True, help="a saved in-memory IVF index (.faiss)")
    parser.add_argument("--changes", type=int, default=50_000)
    parser.add_argument("--save-dir", default=None, help="save the folded index here and measure the save")
    parser.add_argument("--queries", default=None, help="(q, d) float32 .npy searched by a thread meanwhile")
    parser.add_argument("--in-thread", action="store_true",
                        help="fold and save in a new thread (as the service's compaction does), not the main one")
    args = parser.parse_args()

    import faiss

    from indexer.core.compaction import fold_in_place
    from indexer.core.membership import indexed_ids
    from indexer.core.segments import SegmentedIndex

    index = faiss.read_index(args.index)
    report = {"loaded": memory_mb()}
    rng = np.random.default_rng(0)
    sealed_ids = indexed_ids(index)
    new_ids = np.arange(args.changes, dtype=np.int64) + int(sealed_ids.max()) + 1
    segmented = SegmentedIndex(index, sealed_ids=sealed_ids)
    for start in range(0, args.changes, 1000):
        rows = rng.standard_normal((len(new_ids[start:start + 1000]), index.d)).astype(np.float32)
        segmented = segmented.added(new_ids[start:start + 1000], rows / np.linalg.norm(rows, axis=1, keepdims=True))
    segmented, _ = segmented.removed(np.sort(rng.choice(sealed_ids, args.changes, replace=False)))
    segmented, _ = segmented.removed(new_ids[:300])
    release_free_memory()
    stop_queries = threading.Event()
    searched = [0]

    def query_loop(queries: np.ndarray) -> None:
        from indexer.core.search import search

        while not stop_queries.is_set():
            for row in range(len(queries)):
                search(segmented, queries[row:row + 1], 10)
                searched[0] += 1

    querier = None
    if args.queries:
        querier = threading.Thread(target=query_loop, args=(np.load(args.queries).astype(np.float32),))
        querier.start()
        time.sleep(1.0)
    report["fold"] = measured(lambda: fold_in_place(segmented), args.in_thread)
    if args.save_dir:
        from indexer.core.index_io import save_index

        target = Path(args.save_dir) / "folded.faiss"
        report["save"] = measured(lambda: save_index(segmented.sealed, target, {"kind": "ivf"}), args.in_thread)
    stop_queries.set()
    if querier is not None:
        querier.join()
        report["queries_beside"] = searched[0]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
